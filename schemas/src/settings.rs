//! Checks the roles' typed settings share (each role's settings live with its crate): a text
//! setting that must not be empty, a limit or timeout whose 0 would turn a role off.

/// The first of `settings` (`(key, text)` of `[section]`) that is empty or blank, as the error
/// naming it.
pub fn not_empty(section: &str, settings: &[(&str, &str)]) -> Result<(), String> {
    match settings.iter().find(|(_, text)| text.trim().is_empty()) {
        Some((key, _)) => Err(format!("{section}.{key} is empty")),
        None => Ok(()),
    }
}

/// The first of `settings` (`(key, value)` of `[section]`) that is 0, as the error naming it.
pub fn at_least_one(section: &str, settings: &[(&str, u64)]) -> Result<(), String> {
    match settings.iter().find(|(_, value)| *value == 0) {
        Some((key, _)) => Err(format!("{section}.{key} is 0: it must be at least 1")),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_bad_setting_is_named() {
        assert_eq!(not_empty("ingest", &[("brokers", "b:9092"), ("events_topic", " ")]), Err("ingest.events_topic is empty".into()));
        assert_eq!(not_empty("ingest", &[("brokers", "b:9092")]), Ok(()));
        assert_eq!(at_least_one("query", &[("sql_max_rows", 5), ("sql_timeout_secs", 0), ("max_connections", 0)]), Err("query.sql_timeout_secs is 0: it must be at least 1".into()));
        assert_eq!(at_least_one("query", &[("sql_max_rows", 5)]), Ok(()));
    }
}
