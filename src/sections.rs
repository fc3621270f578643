//! Every setting validated at start, each by the module that uses it.
//!
//! [`Config`] holds the settings every part shares (folders, addresses, the time zone and
//! the publication window, plain durations); each module turns the settings it alone uses
//! into its own types with a `from_config` next to those types. [`Sections::new`] calls them
//! all, so that one invalid setting stops a command before it does anything, with a message
//! naming the setting; components then receive the section they need.
//!
//! This module sits above every module whose settings it builds (`package`, `site`, `http`,
//! `prep`, the publisher, the SFTP and pull channels, the purge, the clock check, syslog,
//! ACME), none of which `config` names.

use std::path::Path;

use anyhow::Result;

use crate::acme::AcmeSettings;
use crate::clock::ClockSettings;
use crate::config::{Config, Invalid, SettingArgs};
use crate::http::HttpSettings;
use crate::http::health::HealthSettings;
use crate::intake::pull::PullSettings;
use crate::intake::sftp::SftpSettings;
use crate::package::PackageSettings;
use crate::prep::SummarySettings;
use crate::publisher::PublisherSettings;
use crate::purge::PurgeSettings;
use crate::site::SiteSettings;
use crate::syslog::SyslogSettings;

/// The validated settings, by the module that uses them.
#[derive(Debug, Clone)]
pub(crate) struct Sections {
    /// What every part shares.
    pub(crate) config: Config,
    /// Corte times, evidence and unpacking limits of packages.
    pub(crate) package: PackageSettings,
    /// Cache policy, overlay or replace, memory of the live site.
    pub(crate) site: SiteSettings,
    /// Listeners' limits, timeouts and security headers.
    pub(crate) http: HttpSettings,
    /// How a data package's summary is checked.
    pub(crate) summary: SummarySettings,
    /// The embedded SFTP server, when `sftp_listen` is set.
    pub(crate) sftp: Option<SftpSettings>,
    /// HTTPS pull, when `pull_url` or `replica_of` is set.
    pub(crate) pull: Option<PullSettings>,
    /// The names the admin listener answers to besides its address.
    pub(crate) admin_hosts: Vec<String>,
    /// The load balancer's health listener and draining, when `health_listen` is set.
    pub(crate) health: Option<HealthSettings>,
    /// The purge of caches in front, when `purge_url` is set.
    pub(crate) purge: Option<PurgeSettings>,
    /// The check of the clock against `ntp_servers`.
    pub(crate) clock: ClockSettings,
    /// Journal events sent to syslog, when `syslog` is set.
    pub(crate) syslog: Option<SyslogSettings>,
    /// Automatic HTTPS over ACME, when `acme_domains` is set.
    pub(crate) acme: Option<AcmeSettings>,
}

impl Sections {
    /// Resolves the layers (`config_file`, environment, `args`) and validates every setting.
    pub(crate) fn load(config_file: Option<&Path>, args: &SettingArgs) -> Result<Self> {
        Ok(Self::new(Config::load(config_file, args)?)?)
    }

    /// Validates every module's settings; the first invalid one is the error.
    pub(crate) fn new(config: Config) -> Result<Self, Invalid> {
        Ok(Self {
            package: PackageSettings::from_config(&config)?,
            site: SiteSettings::from_config(&config)?,
            http: HttpSettings::from_config(&config)?,
            summary: SummarySettings::from_config(&config)?,
            sftp: SftpSettings::from_config(&config)?,
            pull: PullSettings::from_config(&config)?,
            admin_hosts: crate::admin::admin_hosts(&config)?,
            health: HealthSettings::from_config(&config)?,
            purge: PurgeSettings::from_config(&config)?,
            clock: ClockSettings::from_config(&config)?,
            syslog: SyslogSettings::from_config(&config)?,
            acme: AcmeSettings::from_config(&config)?,
            config,
        })
    }

    /// What the publisher works by.
    pub(crate) fn publisher(&self) -> PublisherSettings {
        PublisherSettings {
            package: self.package.clone(),
            site: self.site.clone(),
            summary: self.summary,
            rejected_retention: self.config.rejected_retention,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize as _;

    use super::*;
    use crate::config::{PROFILES, Settings};

    fn with(settings: Settings) -> Result<Sections> {
        Ok(Sections::new(Config::from_settings(settings)?)?)
    }

    #[test]
    fn every_profile_is_valid() {
        for (name, text) in PROFILES {
            let table: toml::Table = toml::from_str(text).unwrap();
            let settings = Settings::deserialize(table).unwrap();
            with(settings).unwrap_or_else(|e| panic!("profile {name}: {e}"));
        }
    }

    #[test]
    fn invalid_values_name_the_setting() {
        for (setting, value) in [
            ("corte_pattern", toml::Value::from("(?P<Y>\\d{4})")),
            ("max_members", toml::Value::from(0)),
            ("cache_rules", toml::Value::from(vec!["*.css"])),
            ("hsts", toml::Value::from("a\nb")),
            ("trusted_proxies", toml::Value::from(vec!["proxy"])),
            (
                "admin_hosts",
                toml::Value::from(vec!["https://admin.example.mx"]),
            ),
            (
                "pull_url",
                toml::Value::from(vec!["ftp://prep.example.mx/"]),
            ),
            ("health_listen", toml::Value::from(vec!["localhost"])),
            ("health_max_lag", toml::Value::from("0s")),
            ("drain_time", toml::Value::from("soon")),
            (
                "purge_url",
                toml::Value::from(vec!["http://10.0.0.5:6081/prep/"]),
            ),
            (
                "replica_of",
                toml::Value::from("https://10.0.0.1:9443/?t=1"),
            ),
            ("feed_listen", toml::Value::from(vec!["10.0.0.1"])),
            ("ntp_servers", toml::Value::from(vec!["ntp://pool.ntp.org"])),
            ("clock_max_offset", toml::Value::from("0s")),
            ("ntp_interval", toml::Value::from("often")),
            ("syslog", toml::Value::from("udp://10.0.0.9")),
            ("syslog_facility", toml::Value::from("local9")),
            ("acme_domains", toml::Value::from(vec!["*.example.mx"])),
        ] {
            let mut t = toml::Table::new();
            t.insert(setting.into(), value);
            let err = with(Settings::deserialize(t).unwrap())
                .unwrap_err()
                .to_string();
            assert!(err.starts_with(&format!("setting `{setting}`: ")), "{err}");
        }
        // The SFTP server's settings are looked at only when it listens.
        let mut t = toml::Table::new();
        t.insert("sftp_listen".into(), "127.0.0.1:2222".into());
        t.insert("sftp_allow".into(), toml::Value::from(vec!["10.0.0.0/33"]));
        let err = with(Settings::deserialize(t).unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("setting `sftp_allow`: "), "{err}");
        // A purge names the public site's hosts: `purge_host`, or else `acme_domains`.
        let purge = |extra: &[(&str, Vec<&str>)]| {
            let mut t = toml::Table::new();
            t.insert(
                "purge_url".into(),
                toml::Value::from(vec!["http://10.0.0.5:6081/"]),
            );
            for (setting, value) in extra {
                t.insert((*setting).into(), toml::Value::from(value.clone()));
            }
            if t.contains_key("acme_domains") {
                t.insert("tls_listen".into(), toml::Value::from(vec!["127.0.0.1:0"]));
            }
            with(Settings::deserialize(t).unwrap())
        };
        for extra in [vec![], vec![("purge_host", vec!["prep.example.mx:443"])]] {
            let err = purge(&extra).unwrap_err().to_string();
            assert!(err.starts_with("setting `purge_host`: "), "{err}");
        }
        let hosts = |extra: &[(&str, Vec<&str>)]| purge(extra).unwrap().purge.unwrap().hosts;
        assert_eq!(
            hosts(&[("acme_domains", vec!["prep.example.mx"])]),
            ["prep.example.mx"]
        );
        assert_eq!(
            hosts(&[
                ("acme_domains", vec!["prep.example.mx"]),
                ("purge_host", vec!["PREP.example.mx", "10.0.0.80"])
            ]),
            ["prep.example.mx", "10.0.0.80"]
        );
    }

    #[test]
    fn reglas_names_a_known_institute_or_none() {
        let with_reglas = |reglas: &str| {
            let mut t = toml::Table::new();
            t.insert("reglas".into(), toml::Value::String(reglas.into()));
            with(Settings::deserialize(t).unwrap())
        };
        assert!(with_reglas("").unwrap().summary.reglas.is_none());
        assert_eq!(
            with_reglas("ieec-2021")
                .unwrap()
                .summary
                .reglas
                .map(|r| r.name),
            Some("ieec-2021")
        );
        let err = with_reglas("campeche").unwrap_err().to_string();
        assert!(
            err.contains("setting `reglas`") && err.contains("ieeq-2018"),
            "{err}"
        );
    }
}
