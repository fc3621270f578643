//! Who a request came from and who sent it: the user agent as browser, operating system and
//! device class (people) or as an automated client (bots), and the referring site's kind.
//!
//! User agents are read with the `ua-parser` crate on the uap-core rules (`uap-core/`,
//! version 0.18.0, Apache-2.0), the data set most log analysers share; the rules are compiled
//! once per run (a quarter of a second), and each distinct user agent is read once per worker
//! (a worker remembers at most 50,000 readings, each under a SHA-256 of its text, never the
//! text itself).
//!
//! # Guarantees
//! - An automated client is one the rules call a robot (device `Spider`), one that sends no
//!   user agent, or one that does not present itself as a browser (its user agent starts
//!   neither with `Mozilla/` nor with `Opera/`: curl, Wget, programming libraries, monitors).
//!   Everything else is a person. [`BOTS_METHOD`] says so in the report.
//! - A referrer is classified by its host alone: the institute (globs given by the operator),
//!   social networks and search engines (fixed lists below), other sites, or none (direct).

use std::sync::Arc;

use globset::GlobSet;

/// The uap-core rules, as JSON (converted from its `regexes.yaml`).
const UAP_CORE: &str = include_str!("uap-core/regexes.json");

/// How people and bots are told apart, for the report.
pub(crate) const BOTS_METHOD: &str = "Se consideran clientes automatizados (robots) los que las \
    reglas uap-core 0.18.0 identifican como robots (dispositivo «Spider»: buscadores, redes \
    sociales que leen enlaces, monitores), los que no envían agente de usuario y los que no se \
    presentan como navegador (su agente de usuario no empieza con «Mozilla/» ni con «Opera/»: \
    curl, Wget, bibliotecas de programación). Todos los demás son personas. Las cifras de \
    visitantes, visitas, páginas, navegadores, sistemas y dispositivos cuentan solo personas; \
    las solicitudes (hits) y los bytes cuentan a todos. En bitácoras en formato Common, que no \
    registran el agente de usuario, toda solicitud se cuenta como de una persona y el \
    visitante es la dirección del cliente sola.";

/// How referrers are classified, for the report.
pub(crate) const REFERRERS_METHOD: &str = "La procedencia de una visita es el sitio de su \
    primera solicitud (encabezado Referer): «instituto» si es un sitio del instituto, «redes \
    sociales» (Facebook, X/Twitter, Instagram, WhatsApp, TikTok, YouTube, LinkedIn, Reddit, \
    Telegram, Threads, Bluesky), «buscadores» (Google, Bing, DuckDuckGo, Yahoo, Yandex, \
    Baidu, Ecosia, Brave, Qwant), «otros sitios», o «directo» si no lo envía (enlace \
    escrito, favorito o aplicación).";

/// What a user agent says.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Agent {
    /// Browser family (`Chrome`, `Mobile Safari`, `Otro`).
    pub(crate) browser: Box<str>,
    /// Operating system family (`Android`, `iOS`, `Windows`, `Otro`).
    pub(crate) system: Box<str>,
    /// Device class.
    pub(crate) device: Device,
    /// The automated client's name, when it is one.
    pub(crate) bot: Option<Box<str>>,
}

/// A device class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Device {
    /// A phone.
    Phone,
    /// A tablet.
    Tablet,
    /// A desktop or laptop computer.
    Desktop,
    /// Anything else (a TV, a console, unknown).
    Other,
}

impl Device {
    /// The Spanish name the report uses.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Phone => "móvil",
            Self::Tablet => "tableta",
            Self::Desktop => "escritorio",
            Self::Other => "otro",
        }
    }
}

/// The compiled uap-core rules.
pub(crate) struct Agents {
    extractor: ua_parser::Extractor<'static>,
}

/// The rules could not be loaded (a defect of the build, not of the input).
#[derive(Debug, thiserror::Error)]
#[error("the user-agent rules built into difusor cannot be loaded: {0}")]
pub(crate) struct RulesError(String);

impl Agents {
    /// Compiles the rules.
    pub(crate) fn load() -> Result<Self, RulesError> {
        let regexes: ua_parser::Regexes<'static> =
            serde_json::from_str(UAP_CORE).map_err(|e| RulesError(e.to_string()))?;
        let extractor =
            ua_parser::Extractor::try_from(regexes).map_err(|e| RulesError(e.to_string()))?;
        Ok(Self { extractor })
    }

    /// The reading of a request whose log does not record the user agent (Common format):
    /// a person, browser and system unknown.
    pub(crate) fn unrecorded() -> Arc<Agent> {
        Arc::new(Agent {
            browser: "(no registrado)".into(),
            system: "(no registrado)".into(),
            device: Device::Other,
            bot: None,
        })
    }

    /// Reads one user agent (`None`: the request had none).
    pub(crate) fn classify(&self, agent: Option<&[u8]>) -> Arc<Agent> {
        let Some(text) = agent.map(String::from_utf8_lossy) else {
            return Arc::new(Agent::bot("(sin agente de usuario)"));
        };
        let (browser, system, device) = self.extractor.extract(&text);
        let browser = browser.map_or_else(|| "Otro".to_owned(), |b| b.family.into_owned());
        if device.as_ref().is_some_and(|d| d.device == "Spider")
            || !(text.starts_with("Mozilla/") || text.starts_with("Opera/"))
        {
            let name = if browser == "Otro" {
                let own = text.split(['/', ' ', ';']).next().unwrap_or("");
                own.chars().take(MAX_BOT_NAME_CHARS).collect()
            } else {
                browser
            };
            return Arc::new(Agent::bot(&name));
        }
        let system = system.map_or_else(|| "Otro".to_owned(), |s| s.os.into_owned());
        let tablet = device.as_ref().is_some_and(|d| {
            d.device.contains("iPad")
                || d.brand.as_deref().is_some_and(|b| b.contains("Tablet"))
                || d.device.contains("Tablet")
        }) || (system == "Android" && !text.contains("Mobile"));
        let device = if tablet {
            Device::Tablet
        } else {
            match system.as_str() {
                "iOS" | "Android" | "Windows Phone" | "KaiOS" | "BlackBerry OS" => Device::Phone,
                "Windows" | "Mac OS X" | "Linux" | "Ubuntu" | "Chrome OS" | "Fedora"
                | "FreeBSD" | "Debian" => Device::Desktop,
                _ => Device::Other,
            }
        };
        Arc::new(Agent {
            browser: browser.into(),
            system: system.into(),
            device,
            bot: None,
        })
    }
}

impl Agent {
    fn bot(name: &str) -> Self {
        let name = if name.is_empty() { "Otro" } else { name };
        Self {
            browser: name.into(),
            system: "Otro".into(),
            device: Device::Other,
            bot: Some(name.into()),
        }
    }
}

/// Where a visit came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Origin {
    /// A site of the institute.
    Institute,
    /// A social network.
    Social,
    /// A search engine.
    Search,
    /// Any other site.
    Other,
    /// No referrer.
    Direct,
}

impl Origin {
    /// Every origin, in the report's order.
    pub(crate) const ALL: [Self; 5] = [
        Self::Institute,
        Self::Social,
        Self::Search,
        Self::Other,
        Self::Direct,
    ];

    /// The Spanish name the report uses.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Institute => "instituto",
            Self::Social => "redes sociales",
            Self::Search => "buscadores",
            Self::Other => "otros sitios",
            Self::Direct => "directo",
        }
    }
}

/// Hosts of social networks (a host is theirs when it is one of these or ends in `.` + one).
const SOCIAL: &[&str] = &[
    "facebook.com",
    "fb.com",
    "fb.me",
    "t.co",
    "twitter.com",
    "x.com",
    "instagram.com",
    "whatsapp.com",
    "wa.me",
    "tiktok.com",
    "youtube.com",
    "youtu.be",
    "linkedin.com",
    "lnkd.in",
    "reddit.com",
    "t.me",
    "telegram.org",
    "threads.net",
    "bsky.app",
];

/// Search engines, likewise; `google.` and `yandex.` match any country domain.
const SEARCH: &[&str] = &[
    "bing.com",
    "duckduckgo.com",
    "yahoo.com",
    "baidu.com",
    "ecosia.org",
    "search.brave.com",
    "qwant.com",
    "startpage.com",
];

/// The host of a referrer URL, lower-cased, when it has one.
pub(crate) fn referrer_host(referer: &[u8]) -> Option<String> {
    let uri = http::Uri::try_from(referer).ok()?;
    let host = uri.host()?;
    // A name longer than DNS allows is no site's: cut, it costs no more than a real one.
    let mut end = host.len().min(MAX_HOST_BYTES);
    while !host.is_char_boundary(end) {
        end -= 1;
    }
    Some(host[..end].to_ascii_lowercase())
}

/// The longest host name DNS allows.
const MAX_HOST_BYTES: usize = 253;

/// The longest name a client is counted under when it names itself (`MiBot/1.0`).
const MAX_BOT_NAME_CHARS: usize = 64;

/// The kind of site `host` is; `institute` holds the institute's host globs.
pub(crate) fn origin(host: Option<&str>, institute: &GlobSet) -> Origin {
    let Some(host) = host else {
        return Origin::Direct;
    };
    let under = |domain: &&str| {
        host == *domain
            || host
                .strip_suffix(domain)
                .is_some_and(|head| head.ends_with('.'))
    };
    if institute.is_match(host) {
        Origin::Institute
    } else if SOCIAL.iter().any(under) {
        Origin::Social
    } else if SEARCH.iter().any(under)
        || host
            .split('.')
            .any(|label| label == "google" || label == "yandex")
    {
        Origin::Search
    } else {
        Origin::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn institute() -> GlobSet {
        let mut b = globset::GlobSetBuilder::new();
        b.add(globset::Glob::new("ine.mx").unwrap());
        b.add(globset::Glob::new("*.ine.mx").unwrap());
        b.build().unwrap()
    }

    #[test]
    fn people_have_a_browser_a_system_and_a_device_class() {
        let agents = Agents::load().unwrap();
        let cases = [
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
                "Mobile Safari",
                "iOS",
                Device::Phone,
            ),
            (
                "Mozilla/5.0 (iPad; CPU OS 16_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.0 Mobile/15E148 Safari/604.1",
                "Mobile Safari",
                "iOS",
                Device::Tablet,
            ),
            (
                "Mozilla/5.0 (Linux; Android 13; SM-X200) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
                "Chrome",
                "Android",
                Device::Tablet,
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
                "Chrome",
                "Windows",
                Device::Desktop,
            ),
        ];
        for (text, browser, system, device) in cases {
            let a = agents.classify(Some(text.as_bytes()));
            assert_eq!(
                (&*a.browser, &*a.system, a.device, &a.bot),
                (browser, system, device, &None),
                "{text}"
            );
        }
    }

    #[test]
    fn robots_tools_and_clients_without_an_agent_are_bots() {
        let agents = Agents::load().unwrap();
        for (text, name) in [
            (
                Some("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"),
                "Googlebot",
            ),
            (Some("curl/8.5.0"), "curl"),
            (Some("python-requests/2.31.0"), "Python Requests"),
            (Some("zgrab/0.x"), "zgrab"),
            (None, "(sin agente de usuario)"),
        ] {
            let a = agents.classify(text.map(str::as_bytes));
            assert_eq!(a.bot.as_deref(), Some(name), "{text:?}");
        }
    }

    #[test]
    fn referrers_are_classified_by_host() {
        let inst = institute();
        let kind = |r: &str| origin(referrer_host(r.as_bytes()).as_deref(), &inst);
        assert_eq!(kind("https://prep.ine.mx/inicio"), Origin::Institute);
        assert_eq!(kind("https://l.facebook.com/l.php?u=x"), Origin::Social);
        assert_eq!(kind("https://t.co/abc"), Origin::Social);
        assert_eq!(kind("https://www.google.com.mx/"), Origin::Search);
        assert_eq!(kind("https://notfacebook.com/"), Origin::Other);
        assert_eq!(kind("https://elperiodico.mx/nota"), Origin::Other);
        assert_eq!(origin(None, &inst), Origin::Direct);
        assert_eq!(referrer_host(b"not a url at all"), None);
    }
}
