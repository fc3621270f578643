//! Cache policy per path: which `Cache-Control` each file of a site is served with.
//!
//! Rules are `<glob>=<Cache-Control value>`, tried in order; the first whose glob matches
//! the file's path wins (`*` crosses `/`, so `*.json` matches `/json/a/b.json`). A path no
//! rule matches gets `no-cache`. The policy is applied once per file when a site is built,
//! never per request.
//!
//! # Guarantees
//! - The default rules give `/json/main.json` exactly `no-cache, no-store, must-revalidate`
//!   (R4.7), and `stale-if-error` is never added to a rule that says `no-store`.

use globset::{Glob, GlobSet, GlobSetBuilder};
use http::HeaderValue;

use crate::config::{Config, DEFAULT_CACHE_RULES, Invalid, duration};

/// A rule that could not be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CacheRuleError {
    /// No `=` between the glob and the value.
    #[error(
        "cache rule {0:?} lacks `=`; write it as `<glob>=<Cache-Control value>`, e.g. `*.css=public, max-age=300`"
    )]
    Shape(String),
    /// The glob does not parse.
    #[error("cache rule {rule:?}: {source}")]
    Glob {
        /// The rule.
        rule: String,
        /// Why the glob is invalid.
        source: globset::Error,
    },
    /// The value is not a valid header value.
    #[error("cache rule {0:?}: the value is not a valid header value")]
    Value(String),
}

/// Compiled cache rules.
#[derive(Debug)]
pub(crate) struct CachePolicy {
    globs: GlobSet,
    values: Vec<HeaderValue>,
}

impl CachePolicy {
    /// Compiles `rules`, adding `stale-if-error=<seconds>` to those that allow storing.
    pub(crate) fn new(
        rules: &[String],
        stale_if_error: Option<u64>,
    ) -> Result<Self, CacheRuleError> {
        let mut builder = GlobSetBuilder::new();
        let mut values = Vec::with_capacity(rules.len());
        for rule in rules {
            let (glob, value) = rule
                .split_once('=')
                .ok_or_else(|| CacheRuleError::Shape(rule.clone()))?;
            let glob = Glob::new(glob.trim()).map_err(|source| CacheRuleError::Glob {
                rule: rule.clone(),
                source,
            })?;
            builder.add(glob);
            let mut value = value.trim().to_owned();
            if let Some(secs) = stale_if_error
                && !value.contains("no-store")
            {
                value.push_str(&format!(", stale-if-error={secs}"));
            }
            values.push(
                HeaderValue::from_str(&value).map_err(|_| CacheRuleError::Value(rule.clone()))?,
            );
        }
        let globs = builder.build().map_err(|source| CacheRuleError::Glob {
            rule: rules.join(" "),
            source,
        })?;
        Ok(Self { globs, values })
    }

    /// The policy the settings give: `cache_rules`, with `stale_if_error` when set.
    pub(crate) fn from_config(config: &Config) -> Result<Self, Invalid> {
        let s = &config.settings;
        let stale_if_error = if s.stale_if_error.is_empty() {
            None
        } else {
            Some(
                duration("stale_if_error", &s.stale_if_error)?
                    .as_secs()
                    .unsigned_abs(),
            )
        };
        Self::new(&s.cache_rules, stale_if_error)
            .map_err(|e| Invalid::new("cache_rules", e.to_string()))
    }

    /// The `Cache-Control` value for a file at `path` (absolute, e.g. `/json/main.json`).
    pub(crate) fn for_path(&self, path: &str) -> HeaderValue {
        self.globs
            .matches(path)
            .into_iter()
            .min()
            .and_then(|i| self.values.get(i).cloned())
            .unwrap_or(HeaderValue::from_static("no-cache"))
    }
}

impl Default for CachePolicy {
    /// The [`DEFAULT_CACHE_RULES`], without `stale-if-error`.
    fn default() -> Self {
        let rules: Vec<String> = DEFAULT_CACHE_RULES
            .iter()
            .map(|r| (*r).to_owned())
            .collect();
        Self::new(&rules, None).unwrap_or(Self {
            globs: GlobSet::empty(),
            values: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_rules_follow_the_calls() {
        let p = CachePolicy::default();
        assert_eq!(
            p.for_path("/json/main.json"),
            "no-cache, no-store, must-revalidate"
        );
        assert_eq!(p.for_path("/index.html"), "no-cache");
        assert_eq!(p.for_path("/json/distrito/0001.json"), "no-cache");
        assert_eq!(p.for_path("/css/prep.css"), "public, max-age=60");
    }

    #[test]
    fn stale_if_error_is_added_where_storing_is_allowed() {
        let rules: Vec<String> = DEFAULT_CACHE_RULES
            .iter()
            .map(|r| (*r).to_owned())
            .collect();
        let p = CachePolicy::new(&rules, Some(3600)).unwrap();
        assert_eq!(
            p.for_path("/json/main.json"),
            "no-cache, no-store, must-revalidate"
        );
        assert_eq!(
            p.for_path("/a.css"),
            "public, max-age=60, stale-if-error=3600"
        );
    }

    #[test]
    fn bad_rules_are_explained() {
        assert!(
            CachePolicy::new(&["*.css".to_owned()], None)
                .unwrap_err()
                .to_string()
                .contains("lacks `=`")
        );
        assert!(CachePolicy::new(&["[=x".to_owned()], None).is_err());
    }
}
