//! `difusor generate`: what a system package installs beside the binary, made from the
//! command line's own definition so it cannot drift from it: the manual pages (one for
//! `difusor`, one per subcommand), the shell completions, and the configuration file a
//! package installs as `/etc/difusor/difusor.toml`.
//!
//! # Guarantees
//! - Every file is written whole: a temporary name in the target folder, fsync, rename.
//! - Without `--out-dir` the one asked for (the main page for `man`) goes to standard output.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap_complete::Shell;

use crate::config;

/// What `difusor generate` makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Asset {
    /// Manual pages, section 1: `difusor.1` and `difusor-<subcommand>.1`.
    Man,
    /// Bash completion (`difusor.bash`).
    Bash,
    /// Zsh completion (`_difusor`).
    Zsh,
    /// Fish completion (`difusor.fish`).
    Fish,
    /// Elvish completion (`difusor.elv`).
    Elvish,
    /// The configuration a system package installs (`difusor.toml`): data in
    /// /var/lib/difusor, the public site on port 80 of every address, the admin listener on
    /// loopback; every other setting commented at its default.
    Config,
}

/// The folder a system package keeps its data in.
pub(crate) const PACKAGED_DATA_DIR: &str = "/var/lib/difusor";

/// The addresses a system package's server listens on.
const PACKAGED_LISTEN: &[&str] = &["0.0.0.0:80", "[::]:80"];

/// Makes `asset` for `command` (the full command line, environment variables wired) into
/// `out_dir`, printing each file's path; or to standard output without `out_dir`.
pub(crate) fn run(command: clap::Command, asset: Asset, out_dir: Option<&Path>) -> Result<()> {
    let files = render(command, asset)?;
    let Some(dir) = out_dir else {
        let (_, bytes) = files.first().context("nothing to write")?;
        std::io::stdout()
            .write_all(bytes)
            .context("cannot write to standard output")?;
        return Ok(());
    };
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for (name, bytes) in files {
        let path = write_whole(dir, &name, &bytes)?;
        println!("{}", path.display());
    }
    Ok(())
}

/// The files of `asset`, name and content; the first is what goes to standard output.
fn render(command: clap::Command, asset: Asset) -> Result<Vec<(String, Vec<u8>)>> {
    let mut command = command.disable_help_subcommand(true);
    command.build();
    let shell = match asset {
        Asset::Man => return manual(&command),
        Asset::Config => {
            let mut set = toml::Table::new();
            set.insert("data_dir".into(), PACKAGED_DATA_DIR.into());
            set.insert(
                "listen".into(),
                toml::Value::Array(PACKAGED_LISTEN.iter().map(|&a| a.into()).collect()),
            );
            let text = config::commented_file("generic", &set)?;
            return Ok(vec![(
                config::DEFAULT_CONFIG_FILE.to_owned(),
                text.into_bytes(),
            )]);
        }
        Asset::Bash => Shell::Bash,
        Asset::Zsh => Shell::Zsh,
        Asset::Fish => Shell::Fish,
        Asset::Elvish => Shell::Elvish,
    };
    let name = command.get_name().to_owned();
    let mut bytes = Vec::new();
    clap_complete::generate(shell, &mut command, &name, &mut bytes);
    let file = match shell {
        Shell::Zsh => format!("_{name}"),
        Shell::Fish => format!("{name}.fish"),
        Shell::Elvish => format!("{name}.elv"),
        _ => format!("{name}.bash"),
    };
    Ok(vec![(file, bytes)])
}

/// The main page, then one page per visible subcommand.
fn manual(command: &clap::Command) -> Result<Vec<(String, Vec<u8>)>> {
    let page = |cmd: &clap::Command| -> Result<(String, Vec<u8>)> {
        let man = clap_mangen::Man::new(cmd.clone());
        let mut bytes = Vec::new();
        man.render(&mut bytes)
            .context("cannot render the manual page")?;
        Ok((man.get_filename(), bytes))
    };
    let mut pages = vec![page(command)?];
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        pages.push(page(sub)?);
    }
    Ok(pages)
}

/// Writes `bytes` as `dir/name`: a temporary file in `dir`, fsync, rename.
fn write_whole(dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf> {
    let path = dir.join(name);
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .with_context(|| format!("cannot write {}", path.display()))?;
    let file = tmp
        .persist(&path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    // Read by everyone, as installed files are.
    let mut perms = file.metadata()?.permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o644);
    file.set_permissions(perms)?;
    Ok(path)
}
