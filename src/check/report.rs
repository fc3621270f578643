//! The result of checking one server: every figure as JSON for machines, and a table with
//! plain Spanish sentences for the people of the institute and the difusor.
//!
//! # Guarantees
//! - [`Report::conclude`] alone decides the result from the observations: `fail` when
//!   something served is wrong (a difference, a missing file, a leak before the start, a stale
//!   corte, a missing or wrong header, an answer slower than [`SLOW_MILLIS`], an answer that
//!   did not come while others did), `unchecked` when nothing could be asked (no answer at
//!   all, a failed TLS handshake), `ok` otherwise; the exit status follows from it (0, 1, 2).
//! - Every problem is one finding, a sentence that names the file or header and says what
//!   was expected; notes that do not make the check fail (a certificate close to its end, a
//!   corte nothing says) are warnings.

use std::fmt::Write as _;

use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use serde::Serialize;

use super::expected::PackageInfo;
use super::served::Seen;
use super::tls::TlsInfo;

/// The exact `Cache-Control` of `json/main.json` (R4.7).
pub(super) const MAIN_CACHE_CONTROL: &str = "no-cache, no-store, must-revalidate";

/// Longest a visitor may wait for an answer (R4.9).
pub(super) const SLOW_MILLIS: u64 = 10_000;

/// Days of validity left under which the certificate is worth a warning.
const CERTIFICATE_WARNING_DAYS: i64 = 14;

/// Files named one by one in the findings; the rest are counted.
const NAMED_FILES: usize = 10;

/// The verdict on one server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum Verdict {
    /// Everything equal and fresh.
    Ok,
    /// Something served is wrong.
    Fail,
    /// The server could not be checked.
    Unchecked,
}

impl Verdict {
    /// The exit status it gives: 0, 1, 2.
    pub(super) fn exit(self) -> u8 {
        match self {
            Self::Ok => 0,
            Self::Fail => 1,
            Self::Unchecked => 2,
        }
    }

    /// The worse of two.
    pub(super) fn worst(self, other: Self) -> Self {
        std::cmp::max_by_key(self, other, |v| v.exit())
    }
}

/// What became of one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum Outcome {
    /// Served byte for byte.
    Equal,
    /// Served with other bytes.
    Different,
    /// Not served (404, 410, or any answer but 200).
    Missing,
    /// Served byte for byte before the start (`--embargo`), under any status.
    Leak,
    /// Not served before the start, as it must be (`--embargo`).
    Withheld,
    /// No answer (refused, reset, timed out, undecodable).
    Error,
}

/// One file's check.
#[derive(Debug, Clone, Serialize)]
pub(super) struct FileReport {
    /// Its path under the site's address.
    pub(super) path: String,
    /// The answer's status, if one came.
    pub(super) status: Option<u16>,
    /// What became of it.
    pub(super) result: Outcome,
    /// How long the answer took.
    pub(super) millis: Option<u64>,
    /// The content codings of the answer, in the order applied (`gzip`, `gzip, br`).
    pub(super) encoding: Option<String>,
    /// SHA-256 of the package's file.
    pub(super) expected_sha256: String,
    /// SHA-256 of what was served (`None` when nothing was, or it was longer than read).
    pub(super) served_sha256: Option<String>,
    /// The first byte that differs, for a different file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) first_difference: Option<u64>,
    /// Why no answer came.
    pub(super) error: Option<String>,
}

/// How many files ended each way.
#[derive(Debug, Clone, Default, Serialize)]
pub(super) struct Counts {
    pub(super) equal: usize,
    pub(super) different: usize,
    pub(super) missing: usize,
    pub(super) leak: usize,
    pub(super) withheld: usize,
    pub(super) error: usize,
}

/// The `Cache-Control` of `json/main.json`.
#[derive(Debug, Clone, Serialize)]
pub(super) struct CacheControl {
    /// The path looked at.
    pub(super) path: String,
    /// The header as served, if it was.
    pub(super) served: Option<String>,
    /// Whether it is exactly [`MAIN_CACHE_CONTROL`].
    pub(super) ok: bool,
}

/// One header a targets file expects on `main.json`'s answer.
#[derive(Debug, Clone, Serialize)]
pub(super) struct HeaderCheck {
    /// Its name.
    pub(super) name: String,
    /// The value it must have; `None`: only present.
    pub(super) expected: Option<String>,
    /// The value served.
    pub(super) served: Option<String>,
    /// Whether it passed.
    pub(super) ok: bool,
}

/// The check of one server.
#[derive(Debug, Clone, Serialize)]
pub(super) struct Report {
    /// The target's name (its address when it has none).
    pub(super) target: String,
    /// The site's address.
    pub(super) url: String,
    /// When the check began.
    pub(super) checked_at: String,
    /// Checked as before the start: nothing may be served.
    pub(super) embargo: bool,
    /// The package compared against.
    pub(super) package: Option<PackageInfo>,
    /// The corte the server must show.
    pub(super) expected_corte: Option<String>,
    /// The corte it shows, if anything says.
    pub(super) served_corte: Option<String>,
    /// Where that was read.
    pub(super) served_corte_source: Option<Seen>,
    /// Whether it shows another corte than the expected one.
    pub(super) stale: bool,
    /// Every file's check.
    pub(super) files: Vec<FileReport>,
    /// How many ended each way.
    pub(super) counts: Counts,
    /// `main.json`'s `Cache-Control` (not judged under `--embargo`).
    pub(super) main_cache_control: Option<CacheControl>,
    /// The headers the targets file asks for.
    pub(super) headers: Vec<HeaderCheck>,
    /// The slowest answer.
    pub(super) slowest_millis: Option<u64>,
    /// The HTTP version of the answers.
    pub(super) http_version: Option<String>,
    /// The TLS handshake, for an https address.
    pub(super) tls: Option<TlsInfo>,
    /// In watch mode: from the package's arrival to the first period the corte was seen.
    pub(super) lag_seconds: Option<i64>,
    /// Every problem, in words.
    pub(super) findings: Vec<String>,
    /// Notes that do not fail the check.
    pub(super) warnings: Vec<String>,
    /// Whether the check was cut by its deadline (`--max-time`, or `--period-timeout` in a
    /// watch) before every file was answered.
    pub(super) unfinished: bool,
    /// The verdict.
    pub(super) result: Verdict,
    /// The exit status the verdict gives.
    pub(super) exit: u8,
}

impl Report {
    /// A report of `target` at `url` with nothing observed yet.
    pub(super) fn new(target: &str, url: &str, checked_at: String, embargo: bool) -> Self {
        Self {
            target: target.to_owned(),
            url: url.to_owned(),
            checked_at,
            embargo,
            package: None,
            expected_corte: None,
            served_corte: None,
            served_corte_source: None,
            stale: false,
            files: Vec::new(),
            counts: Counts::default(),
            main_cache_control: None,
            headers: Vec::new(),
            slowest_millis: None,
            http_version: None,
            tls: None,
            lag_seconds: None,
            findings: Vec::new(),
            warnings: Vec::new(),
            unfinished: false,
            result: Verdict::Unchecked,
            exit: 2,
        }
    }

    /// A report of a server that could not be checked at all, for `why`.
    pub(super) fn unchecked(mut self, why: String) -> Self {
        self.findings.push(why);
        self.result = Verdict::Unchecked;
        self.exit = self.result.exit();
        self
    }

    /// Counts the files, writes the findings and decides the verdict.
    pub(super) fn conclude(&mut self) {
        let mut counts = Counts::default();
        for file in &self.files {
            *match file.result {
                Outcome::Equal => &mut counts.equal,
                Outcome::Different => &mut counts.different,
                Outcome::Missing => &mut counts.missing,
                Outcome::Leak => &mut counts.leak,
                Outcome::Withheld => &mut counts.withheld,
                Outcome::Error => &mut counts.error,
            } += 1;
        }
        self.slowest_millis = self.files.iter().filter_map(|f| f.millis).max();
        let answered = self.files.iter().any(|f| f.status.is_some());
        let mut findings = std::mem::take(&mut self.findings);
        if let (true, Some(served), Some(expected)) =
            (self.stale, &self.served_corte, &self.expected_corte)
        {
            findings.push(format!(
                "sirve el corte {served}; el último corte del instituto es {expected} (R4.5)"
            ));
        }
        findings.extend(self.file_findings());
        if let Some(cc) = &self.main_cache_control
            && !cc.ok
        {
            findings.push(match &cc.served {
                Some(v) => format!(
                    "{} se sirve con Cache-Control \"{v}\"; debe ser exactamente \
                     {MAIN_CACHE_CONTROL:?} (R4.7)",
                    cc.path
                ),
                None => format!(
                    "{} se sirve sin Cache-Control; debe ser exactamente {MAIN_CACHE_CONTROL:?} \
                     (R4.7)",
                    cc.path
                ),
            });
        }
        for h in self.headers.iter().filter(|h| !h.ok) {
            findings.push(match (&h.expected, &h.served) {
                (_, None) => format!("falta el encabezado {}", h.name),
                (Some(e), Some(s)) => {
                    format!("el encabezado {} vale \"{s}\"; se espera {e:?}", h.name)
                }
                (None, Some(_)) => format!("el encabezado {} no es el esperado", h.name),
            });
        }
        if let Some(tls) = &self.tls
            && tls.days_left < CERTIFICATE_WARNING_DAYS
        {
            self.warnings.push(format!(
                "el certificado TLS vence en {} días ({})",
                tls.days_left, tls.not_after
            ));
        }
        if !self.embargo && self.served_corte.is_none() && answered {
            self.warnings.push(
                "no se pudo saber qué corte sirve: ni encabezado X-PREP-Corte ni fecha de corte \
                 en json/main.json"
                    .to_owned(),
            );
        }
        let unchecked = !answered && (self.files.is_empty() || counts.error == self.files.len());
        self.result = if unchecked {
            Verdict::Unchecked
        } else if findings.is_empty() {
            Verdict::Ok
        } else {
            Verdict::Fail
        };
        self.findings = findings;
        self.counts = counts;
        self.exit = self.result.exit();
    }

    /// One sentence per file that is not as it must be (the first [`NAMED_FILES`] of each
    /// kind, then how many more).
    fn file_findings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for kind in [
            Outcome::Different,
            Outcome::Missing,
            Outcome::Leak,
            Outcome::Error,
        ] {
            let files: Vec<&FileReport> = self.files.iter().filter(|f| f.result == kind).collect();
            for f in files.iter().take(NAMED_FILES) {
                out.push(sentence(f));
            }
            if files.len() > NAMED_FILES {
                out.push(format!(
                    "y {} archivos más en el mismo caso",
                    files.len() - NAMED_FILES
                ));
            }
        }
        for f in self
            .files
            .iter()
            .filter(|f| f.millis.is_some_and(|m| m > SLOW_MILLIS))
        {
            out.push(format!(
                "{} tardó {:.1} s; todo visitante debe ser atendido en menos de 10 s (R4.9)",
                f.path,
                f.millis.unwrap_or(0) as f64 / 1000.0
            ));
        }
        out
    }

    /// The findings in one line, for the observation log.
    pub(super) fn summary(&self) -> String {
        self.findings.join("; ")
    }

    /// The first finding, and how many more there are, for a watch line.
    pub(super) fn headline(&self) -> String {
        match self.findings.as_slice() {
            [] => String::new(),
            [one] => one.clone(),
            [first, rest @ ..] => format!("{first} (y {} hallazgos más)", rest.len()),
        }
    }

    /// The report for people: the files that are not equal (all of them when few), then the
    /// figures, findings and the verdict with the next step.
    pub(super) fn render(&self) -> String {
        let mut out = String::new();
        if self.target == self.url {
            let _ = writeln!(out, "{}", self.url);
        } else {
            let _ = writeln!(out, "{}  {}", self.target, self.url);
        }
        let shown: Vec<&FileReport> = if self.files.len() < 30 {
            self.files.iter().collect()
        } else {
            self.files
                .iter()
                .filter(|f| !matches!(f.result, Outcome::Equal | Outcome::Withheld))
                .collect()
        };
        if !shown.is_empty() {
            let mut table = Table::new();
            table.load_preset(UTF8_FULL_CONDENSED).set_header([
                "archivo",
                "estado",
                "resultado",
                "ms",
                "codificación",
                "detalle",
            ]);
            for f in shown {
                table.add_row([
                    f.path.clone(),
                    f.status.map_or("-".to_owned(), |s| s.to_string()),
                    word(f.result).to_owned(),
                    f.millis.map_or("-".to_owned(), |m| m.to_string()),
                    f.encoding.clone().unwrap_or_else(|| "-".to_owned()),
                    detail(f),
                ]);
            }
            let _ = writeln!(out, "{table}");
        }
        let c = &self.counts;
        let _ = writeln!(
            out,
            "archivos: {} iguales, {} diferentes, {} faltan, {} sin respuesta{}",
            c.equal,
            c.different,
            c.missing,
            c.error,
            if self.embargo {
                format!(
                    ", {} retenidos, {} servidos antes de tiempo",
                    c.withheld, c.leak
                )
            } else {
                String::new()
            }
        );
        if let Some(p) = &self.package {
            let _ = writeln!(out, "paquete: {} (corte {})", p.name, p.corte);
        }
        if !self.embargo {
            let _ = writeln!(
                out,
                "corte servido: {}{}",
                self.served_corte.as_deref().unwrap_or("desconocido"),
                match self.served_corte_source {
                    Some(Seen::Header) => " (encabezado X-PREP-Corte)",
                    Some(Seen::Package) => " (json/main.json idéntico al de su paquete)",
                    Some(Seen::MainJson) => " (fecha de corte en json/main.json)",
                    None => "",
                }
            );
        }
        if let Some(lag) = self.lag_seconds {
            let _ = writeln!(out, "publicado a los {lag} s de llegar el paquete");
        }
        if let Some(ms) = self.slowest_millis {
            let _ = writeln!(out, "respuesta más lenta: {ms} ms");
        }
        if let Some(v) = &self.http_version {
            let _ = writeln!(out, "HTTP: {v}");
        }
        if let Some(t) = &self.tls {
            let _ = writeln!(
                out,
                "TLS: {}, ALPN {}, HTTP/2 {}, certificado válido hasta {} ({} días)",
                t.protocol,
                t.alpn.as_deref().unwrap_or("-"),
                if t.http2 { "sí" } else { "no" },
                t.not_after,
                t.days_left
            );
        }
        for f in &self.findings {
            let _ = writeln!(out, "- {f}");
        }
        for w in &self.warnings {
            let _ = writeln!(out, "aviso: {w}");
        }
        let _ = writeln!(out, "{}", self.verdict_line());
        out
    }

    /// `RESULTADO: …` with the next step.
    fn verdict_line(&self) -> String {
        match self.result {
            Verdict::Ok if self.embargo => {
                "RESULTADO: correcto: no sirve ningún archivo del paquete antes de tiempo"
                    .to_owned()
            }
            Verdict::Ok => "RESULTADO: correcto: sirve el último corte sin alteraciones".to_owned(),
            Verdict::Unchecked if self.unfinished => {
                "RESULTADO: no se pudo verificar: la verificación no terminó en el plazo \
                 (--max-time); revise por qué el sitio responde tan lento o dé un plazo mayor"
                    .to_owned()
            }
            Verdict::Unchecked => "RESULTADO: no se pudo verificar: revise la dirección, la red o \
                                   el certificado y vuelva a intentarlo"
                .to_owned(),
            Verdict::Fail if self.counts.leak > 0 => {
                "RESULTADO: fuga: sirve resultados antes de la hora de inicio; cierre la \
                 publicación de inmediato"
                    .to_owned()
            }
            Verdict::Fail
                if self.stale
                    && self.counts.missing == 0
                    && self.files.iter().all(|f| f.result != Outcome::Error) =>
            {
                "RESULTADO: desactualizado: no sirve el último corte; revise que el paquete \
                 llegó y se publicó"
                    .to_owned()
            }
            Verdict::Fail => "RESULTADO: diferencias: lo servido no es lo que envió el \
                              instituto; corrija y vuelva a verificar"
                .to_owned(),
        }
    }
}

/// A finding for a file that is not as it must be.
fn sentence(f: &FileReport) -> String {
    match f.result {
        Outcome::Different => match (f.first_difference, &f.served_sha256) {
            (Some(at), Some(sha)) => format!(
                "{}: lo servido difiere del paquete desde el byte {at} (SHA-256 servido {sha}, \
                 esperado {})",
                f.path, f.expected_sha256
            ),
            (Some(at), None) => format!(
                "{}: lo servido difiere del paquete desde el byte {at} y es más largo de lo \
                 esperado",
                f.path
            ),
            _ => format!("{}: lo servido difiere del paquete", f.path),
        },
        Outcome::Missing => format!(
            "{}: no se sirve (respuesta {})",
            f.path,
            f.status.map_or("-".to_owned(), |s| s.to_string())
        ),
        Outcome::Leak => format!(
            "{}: se sirve antes de la hora de inicio, idéntico al del paquete (R4.3)",
            f.path
        ),
        Outcome::Error => format!(
            "{}: sin respuesta: {}",
            f.path,
            f.error.as_deref().unwrap_or("-")
        ),
        Outcome::Equal | Outcome::Withheld => String::new(),
    }
}

/// The table's word for an outcome.
fn word(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Equal => "igual",
        Outcome::Different => "diferente",
        Outcome::Missing => "falta",
        Outcome::Leak => "fuga",
        Outcome::Withheld => "retenido",
        Outcome::Error => "error",
    }
}

/// The table's detail of a file.
fn detail(f: &FileReport) -> String {
    match (f.result, f.first_difference, &f.error) {
        (Outcome::Different, Some(at), _) => format!("desde el byte {at}"),
        (_, _, Some(e)) => e.clone(),
        _ => String::new(),
    }
}
