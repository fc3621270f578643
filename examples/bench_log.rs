//! Writes the access log of a state-size election night for the benchmarks, in Combined Log
//! Format as difusor and nginx write it: a population of visitors arriving over 24 hours,
//! each loading the page and its assets and then polling `json/main.json` a heavy-tailed
//! number of times (a few visitors stay all night), some downloading the data package; 2 %
//! robots; referrers from the institute, social networks, search and direct. Lines are in
//! time order.
//!
//! Usage: `bench_log <out.log> <lines> [seed]`

use std::io::Write as _;

const PHONES: usize = 84;
const DESKTOPS: usize = 20;
const BOTS: &[&str] = &[
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
    "curl/8.5.0",
];
const REFERRERS: &[&str] = &[
    "-",
    "-",
    "https://www.ine.mx/",
    "https://l.facebook.com/",
    "https://www.google.com.mx/",
    "https://t.co/x",
    "https://www.eluniversal.com.mx/nota",
];

fn agent(i: usize) -> String {
    if i < 24 {
        format!(
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_{} like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.{} Mobile/15E148 Safari/604.1",
            i % 6,
            i % 4
        )
    } else if i < PHONES {
        format!(
            "Mozilla/5.0 (Linux; Android {}; SM-A{:03}) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/12{}.0.0.0 Mobile Safari/537.36",
            10 + i % 5,
            i,
            i % 10
        )
    } else {
        format!(
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/12{}.0.0.0 Safari/537.36",
            i % 10
        )
    }
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(out), Some(lines)) = (
        args.get(1),
        args.get(2).and_then(|n| n.parse::<usize>().ok()),
    ) else {
        eprintln!("usage: bench_log <out.log> <lines> [seed]");
        std::process::exit(2);
    };
    let seed = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(7);
    let mut rng = fastrand::Rng::with_seed(seed);
    let agents: Vec<String> = (0..PHONES + DESKTOPS).map(agent).collect();
    let span = 24 * 3600u32;
    // (second, visitor, path index, referrer index)
    let mut events: Vec<(u32, u32, u8, u8)> = Vec::with_capacity(lines + 1000);
    let mut visitors: Vec<(String, &str)> = Vec::new();
    while events.len() < lines {
        let ip = format!(
            "{}.{}.{}.{}",
            rng.u8(1..223),
            rng.u8(..),
            rng.u8(..),
            rng.u8(1..255)
        );
        let ua: &str = if rng.f32() < 0.02 {
            BOTS[rng.usize(..BOTS.len())]
        } else {
            &agents[rng.usize(..agents.len())]
        };
        let id = visitors.len() as u32;
        visitors.push((ip, ua));
        let start = rng.u32(..span);
        let referrer = rng.u8(..REFERRERS.len() as u8);
        for path in 0..3 {
            events.push((start, id, path, if path == 0 { referrer } else { 0 }));
        }
        // Pareto-distributed polls: most visitors look a few times, a few all night.
        let polls = (3.0 / (1.0 - rng.f64()).powf(1.0 / 1.2)) as u32;
        let mut t = start;
        for _ in 0..polls.min(2000) {
            t += rng.u32(20..120);
            if t >= span {
                break;
            }
            events.push((t, id, 3, 0));
        }
        if rng.f32() < 0.1 {
            events.push((t.min(span - 1), id, 4, 0));
        }
    }
    events.truncate(lines);
    events.sort_by_key(|e| e.0);
    let paths = [
        "/",
        "/css/prep.css",
        "/js/prep.js",
        "/json/main.json",
        "/datos/PREP_DIP_LOC.zip",
    ];
    let sizes = [5120, 20480, 81920, 65536, 3_000_000];
    let start = jiff::civil::datetime(2024, 6, 2, 20, 0, 0, 0);
    let mut w = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(out)?);
    let mut stamp = (u32::MAX, String::new());
    for (second, visitor, path, referrer) in events {
        if stamp.0 != second {
            let t = start
                .checked_add(jiff::SignedDuration::from_secs(i64::from(second)))
                .map_err(std::io::Error::other)?;
            stamp = (second, t.strftime("%d/%b/%Y:%H:%M:%S -0600").to_string());
        }
        let (ip, ua) = &visitors[visitor as usize];
        let path = usize::from(path);
        let (status, bytes) = if path == 3 && second % 7 == 0 {
            (304, 0)
        } else {
            (200, sizes[path])
        };
        writeln!(
            w,
            "{ip} - - [{}] \"GET {} HTTP/1.1\" {status} {bytes} \"{}\" \"{ua}\"",
            stamp.1,
            paths[path],
            REFERRERS[usize::from(referrer)]
        )?;
    }
    w.flush()
}
