//! Checks the roles' typed settings share (each role's settings live with its crate): a text
//! setting that must not be empty, a limit or timeout whose 0 would turn a role off.

/// Each of `settings` (`(key, text)` of `[section]`) that is empty or blank, as the error naming
/// them (one line each).
pub fn not_empty(section: &str, settings: &[(&str, &str)]) -> Result<(), String> {
    all(settings.iter().map(|(key, text)| if text.trim().is_empty() { Err(format!("{section}.{key} is empty")) } else { Ok(()) }))
}

/// Each of `settings` (`(key, value)` of `[section]`) that is 0, as the error naming them (one
/// line each).
pub fn at_least_one(section: &str, settings: &[(&str, u64)]) -> Result<(), String> {
    all(settings.iter().map(|(key, value)| if *value == 0 { Err(format!("{section}.{key} is 0: it must be at least 1")) } else { Ok(()) }))
}

/// Every failed check of `checks`, one line each, so a config's problems are reported together
/// rather than the first of them only (`check-config` lists the lines as problems of their own).
pub fn all(checks: impl IntoIterator<Item = Result<(), String>>) -> Result<(), String> {
    let problems: Vec<String> = checks.into_iter().filter_map(Result::err).collect();
    if problems.is_empty() { Ok(()) } else { Err(problems.join("\n")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bad_setting_is_named() {
        assert_eq!(not_empty("ingest", &[("brokers", "b:9092"), ("events_topic", " ")]), Err("ingest.events_topic is empty".into()));
        assert_eq!(not_empty("ingest", &[("brokers", "b:9092")]), Ok(()));
        // Regression: only the first bad setting was named.
        assert_eq!(
            at_least_one("query", &[("sql_max_rows", 5), ("sql_timeout_secs", 0), ("max_connections", 0)]),
            Err("query.sql_timeout_secs is 0: it must be at least 1\nquery.max_connections is 0: it must be at least 1".into())
        );
        assert_eq!(at_least_one("query", &[("sql_max_rows", 5)]), Ok(()));
        assert_eq!(all([Ok(()), Err("a".into()), Ok(()), Err("b\nc".into())]), Err("a\nb\nc".into()));
    }
}
