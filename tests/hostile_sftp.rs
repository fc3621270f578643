//! The embedded SFTP server under hostile SSH clients: what OpenSSH's clients cannot be made
//! to send, sent with russh's client (a forwarding to a host named with control characters,
//! a subsystem named likewise, channel opens all at once or closed before their subsystem,
//! key exchanges again and again, SFTP requests no OpenSSH client sends), and the key
//! exchanges OpenSSH's `ssh` can be told to insist on.

use std::time::{Duration, Instant};

use crate::sftp::{
    AnyHost, current_thread, refusals_with, sessions_when, sftp_session, ssh_login, start, text,
};
use crate::support::*;

/// The CPU time the server's process has used so far, user and system, from `/proc`.
fn cpu_time(server: &Server) -> Duration {
    let pid = server.pid().expect("running");
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // After the command's closing parenthesis: the state (field 3), …, utime (14), stime (15).
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    let per_second = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .unwrap();
    let per_second: u64 = String::from_utf8_lossy(&per_second.stdout)
        .trim()
        .parse()
        .unwrap();
    Duration::from_millis(ticks * 1000 / per_second)
}

/// A finite-field Diffie-Hellman key exchange costs the server (the SSH library's big
/// numbers, a private exponent as long as the group) hundreds of milliseconds of a core, on
/// its async runtime's threads, and a client before any key next to nothing: OpenSSH's `ssh`
/// told to insist on one spends a tenth of what it costs the server, a client of one's own
/// need compute nothing. None is offered: a client offering nothing else is refused at the
/// key exchange, and twenty such connections cost the server less than a second of CPU
/// (before, about seven for `diffie-hellman-group18-sha512`). OpenSSH's `sftp` as the
/// institute runs it still uploads (every other test of the server too).
#[test]
fn key_exchanges_that_cost_the_server_a_core_are_not_offered() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(tmp.path(), &[]);
    let finite_field = [
        "diffie-hellman-group18-sha512",
        "diffie-hellman-group17-sha512",
        "diffie-hellman-group16-sha512",
        "diffie-hellman-group15-sha512",
        "diffie-hellman-group14-sha256",
        "diffie-hellman-group-exchange-sha256",
    ];
    let supported = std::process::Command::new("ssh")
        .args(["-Q", "kex"])
        .output()
        .unwrap();
    let supported = String::from_utf8_lossy(&supported.stdout).into_owned();
    let before = cpu_time(&s.server);
    for _ in 0..20 {
        let kex = "KexAlgorithms=diffie-hellman-group18-sha512";
        s.ssh(&s.key, &["-o", kex], &["-s", "sftp"]);
    }
    let spent = cpu_time(&s.server) - before;
    assert!(
        spent < Duration::from_secs(1),
        "{spent:?} of the server's CPU for 20 connections insisting on a finite-field key \
         exchange"
    );
    for kex in finite_field
        .iter()
        .filter(|k| supported.lines().any(|l| l == **k))
    {
        let kex_only = format!("KexAlgorithms={kex}");
        // `-v`: OpenSSH 9.2 says why it gives up only when verbose.
        let out = s.ssh(&s.key, &["-v", "-o", &kex_only], &["-s", "sftp"]);
        assert!(
            !out.status.success() && text(&out).contains("no matching key exchange method"),
            "{kex}: {}",
            text(&out)
        );
    }
    let pkg = s.local(
        "PREP_20240602_2000.zip",
        &site_package("20240602_2000", &[]),
    );
    s.put_until_live(&pkg, "20240602_2000");
}

/// A host name is the client's text like any other: a direct-tcpip channel (`ssh -W`) to a
/// host named with a line break, an escape sequence and a right-to-left override is refused,
/// and its journal entry and its log line show each of them escaped, on one line. (This held
/// before it was tested: OpenSSH's `ssh -W` cannot send such a name.)
#[test]
fn a_forwarding_to_a_host_named_with_control_characters_is_shown_escaped() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(tmp.path(), &[]);
    let host = "evil\r\nforged line\u{1b}[2J\u{202e}moc.elpmaxe";
    current_thread().block_on(async {
        let ssh = ssh_login(&s).await;
        let opened = ssh
            .channel_open_direct_tcpip(host, 9, "127.0.0.1", 4242)
            .await;
        assert!(opened.is_err(), "a direct-tcpip channel was opened");
        ssh.disconnect(russh::Disconnect::ByApplication, "", "en")
            .await
            .unwrap();
    });
    let shown = "forwarding to evil\\u{d}\\u{a}forged line\\u{1b}[2J\\u{202e}moc.elpmaxe:9";
    let refusals = refusals_with(&s.server, "forwarding to");
    assert!(refusals.iter().any(|r| r.contains(shown)), "{refusals:#?}");
    let log = s.server.log();
    let line = log.lines().find(|l| l.contains("forwarding to evil"));
    assert!(
        line.is_some_and(|l| l.contains(shown)),
        "{line:?}\n(the log: {log})"
    );
    assert!(!log.contains("\u{1b}[2J") && !log.contains('\u{202e}'));
}

/// A subsystem named with control characters is refused, and named escaped in the entry and
/// the log: no line break, no escape sequence reaches either. (This held before it was
/// tested: OpenSSH's `ssh -s` sends the name it is given, but a shell rarely passes these.)
#[test]
fn a_subsystem_named_with_control_characters_is_refused_and_shown_escaped() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(tmp.path(), &[]);
    current_thread().block_on(async {
        let ssh = ssh_login(&s).await;
        let mut channel = ssh.channel_open_session().await.unwrap();
        channel
            .request_subsystem(true, "sftp\nforged line\u{1b}]0;title\u{7}\u{202e}")
            .await
            .unwrap();
        let mut refused = false;
        while let Some(msg) = channel.wait().await {
            refused |= matches!(msg, russh::ChannelMsg::Failure);
            if matches!(msg, russh::ChannelMsg::Close) {
                break;
            }
        }
        assert!(refused, "the subsystem was not refused");
    });
    let shown = r#"subsystem "sftp\nforged line\u{1b}]0;title\u{7}\u{202e}""#;
    let refusals = refusals_with(&s.server, "subsystem");
    assert!(refusals.iter().any(|r| r == shown), "{refusals:#?}");
    let log = s.server.log();
    assert!(log.contains(shown), "{log}");
    assert!(!log.contains("forged line\u{1b}") && !log.contains('\u{202e}'));
}

/// Twenty session channels asked for at once: two are opened (one for the `sftp` subsystem,
/// one waiting for it), the rest refused, and the connection is cut after eight refusals,
/// its entry saying why. (This held before it was tested: OpenSSH asks for one channel at a
/// time.)
#[test]
fn channel_opens_all_at_once_get_two_channels_and_the_connection_cut() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(tmp.path(), &[]);
    let opened = current_thread().block_on(async {
        let ssh = ssh_login(&s).await;
        let opens = (0..20).map(|_| ssh.channel_open_session());
        let opened = futures_util::future::join_all(opens).await;
        opened.iter().filter(|o| o.is_ok()).count()
    });
    assert!(opened <= 2, "{opened} channels opened");
    let refusals = refusals_with(&s.server, "a further session channel");
    assert!(refusals.len() >= 8, "{refusals:#?}");
    let sessions = sessions_when(&s.server, |sessions| !sessions.is_empty());
    assert_eq!(
        sessions[0]["detail"]["error"],
        "cut: the client sent 8 requests this server refuses (a shell, a command, forwarding, \
         another subsystem or channel…); an SFTP client sends none",
        "{sessions:#?}"
    );
}

/// A client that asks for a new key exchange again and again is held to the same time limits
/// as one that sends nothing: before logging in, to `sftp_handshake_timeout`; logged in, to
/// `sftp_idle_timeout` without an SFTP request (key exchanges are no request). (This held
/// before it was tested: OpenSSH's `RekeyLimit` cannot go below a few seconds.)
#[test]
fn a_client_asking_for_key_exchanges_without_end_is_cut_at_the_time_limits() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(
        tmp.path(),
        &[
            "--sftp-handshake-timeout",
            "2s",
            "--sftp-idle-timeout",
            "2s",
        ],
    );
    let rekey_until_cut = |ssh: russh::client::Handle<AnyHost>| async move {
        let started = Instant::now();
        while !ssh.is_closed() && started.elapsed() < Duration::from_secs(20) {
            if ssh.rekey_soon().await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        started.elapsed()
    };
    let (before_login, logged_in) = current_thread().block_on(async {
        let config = std::sync::Arc::new(russh::client::Config::default());
        let ssh = russh::client::connect(config, ("127.0.0.1", s.port), AnyHost)
            .await
            .unwrap();
        let before_login = rekey_until_cut(ssh).await;
        let logged_in = rekey_until_cut(ssh_login(&s).await).await;
        (before_login, logged_in)
    });
    assert!(
        before_login < Duration::from_secs(8) && logged_in < Duration::from_secs(8),
        "cut after {before_login:?} before login, {logged_in:?} logged in"
    );
    let sessions = sessions_when(&s.server, |sessions| sessions.len() >= 2);
    let errors: Vec<_> = sessions
        .iter()
        .map(|e| e["detail"]["error"].as_str().unwrap_or_default())
        .collect();
    assert!(
        errors.contains(
            &"cut: the SSH handshake was not finished within 2s (sftp_handshake_timeout)"
        ) && errors.contains(
            &"cut: the client sent no SFTP request for 2s (sftp_idle_timeout); keep-alive \
                  messages do not count"
        ),
        "{sessions:#?}"
    );
}

/// A session channel its client closes before asking for a subsystem frees its place: a
/// connection closing three such channels, one after another, still gets a channel for
/// its `sftp` subsystem, and uploads through it, with no refusal in its entry.
#[test]
fn channels_closed_before_their_subsystem_free_their_places() {
    use tokio::io::AsyncWriteExt;
    let tmp = tempfile::tempdir().unwrap();
    let s = start(tmp.path(), &[]);
    let pkg = site_package("20240602_2000", &[]);
    current_thread().block_on(async {
        let ssh = ssh_login(&s).await;
        for _ in 0..3 {
            let channel = ssh.channel_open_session().await.unwrap();
            channel.close().await.unwrap();
            // The server reads the connection in order: the close comes before the next open.
        }
        let channel = ssh.channel_open_session().await.unwrap();
        channel.request_subsystem(true, "sftp").await.unwrap();
        let sftp = russh_sftp::client::SftpSession::new(channel.into_stream())
            .await
            .unwrap();
        let mut file = sftp.create("PREP_20240602_2000.zip").await.unwrap();
        file.write_all(&pkg).await.unwrap();
        file.shutdown().await.unwrap();
        sftp.close().await.unwrap();
        ssh.disconnect(russh::Disconnect::ByApplication, "", "en")
            .await
            .unwrap();
    });
    s.server.wait_corte("20240602_2000");
    let sessions = sessions_when(&s.server, |sessions| !sessions.is_empty());
    assert_eq!(sessions[0]["detail"]["refusal_count"], 0, "{sessions:#?}");
}

/// SFTP requests no OpenSSH client sends: a session holds at most 16 files open at once, the
/// 17th refused with why; a file open for writing cannot be read; a package handed over
/// cannot be opened for reading, removed, nor have a link or a folder made beside it; nothing
/// more is received. (This held before it was tested.)
#[test]
fn sftp_requests_no_openssh_client_sends_are_refused_and_bounded() {
    use tokio::io::AsyncReadExt;
    let tmp = tempfile::tempdir().unwrap();
    let s = start(tmp.path(), &[]);
    let pkg = s.local(
        "PREP_20240602_2000.zip",
        &site_package("20240602_2000", &[]),
    );
    s.put_until_live(&pkg, "20240602_2000");
    current_thread().block_on(async {
        let (_ssh, sftp) = sftp_session(&s).await;
        let mut open = Vec::new();
        for i in 0..16 {
            open.push(sftp.create(format!(".upload-{i}.part")).await.unwrap());
        }
        let refused = sftp.create(".upload-16.part").await.err();
        let refused = refused.expect("a 17th file opened").to_string();
        assert!(
            refused.contains("at most 16 files open at once"),
            "{refused}"
        );
        let mut buf = [0u8; 16];
        let read = open[0].read(&mut buf).await;
        assert!(read.is_err(), "read from a file open for writing: {read:?}");
        let name = "PREP_20240602_2000.zip";
        assert!(sftp.open(name).await.is_err(), "opened {name} to read");
        assert!(sftp.remove_file(name).await.is_err(), "removed {name}");
        assert!(sftp.symlink("/link", name).await.is_err(), "linked");
        assert!(sftp.create_dir("/sub").await.is_err(), "made a folder");
    });
    let sessions = sessions_when(&s.server, |sessions| sessions.len() >= 2);
    let hostile = sessions.iter().find(|e| e["detail"]["file_count"] == 0);
    let detail = &hostile.expect("the hostile session's entry")["detail"];
    assert_eq!(detail["refusal_count"], 5, "{detail:#}");
    assert_eq!(detail["unfinished_count"], 16, "{detail:#}");
    assert_eq!(events(&s.server, "received").len(), 1);
}
