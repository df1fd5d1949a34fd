//! SQL text as the Postgres wire protocol needs it, before any planner sees it: a small lexer that
//! knows where string literals, quoted identifiers, comments and dollar-quoted bodies are, and on top
//! of it statement splitting (`;` at top level), statement classification (transaction control,
//! `SET`/`RESET`/`SHOW`, everything else), catalog detection and `$n` parameter substitution.
//!
//! Pure: no I/O, no planner. Nothing here decides what is allowed to run — every query still goes
//! through the read-only guard of its backend.

/// What a lexed piece of SQL is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tok {
    /// A bare word (keyword or identifier), as written.
    Word,
    /// A number.
    Number,
    /// A quoted identifier (`"x"` or `` `x` ``), unescaped.
    Quoted(String),
    /// A string literal or a dollar-quoted body.
    Str,
    /// A `--` or `/* */` comment.
    Comment,
    /// `$n`, 1-based.
    Placeholder(usize),
    Semicolon,
    LParen,
    /// Any other character (operators, commas, dots, …).
    Other(char),
}

/// A token and its byte range in the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub tok: Tok,
    pub start: usize,
    pub end: usize,
}

/// How string literals escape: PostgreSQL/DataFusion double the quote (`'it''s'`; a backslash is
/// an ordinary character except in `E'...'`), ClickHouse also treats a backslash as an escape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escapes {
    Standard,
    Backslash,
}

fn is_ident_start(c: char) -> bool {
    c.is_alphabetic() || c == '_'
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$'
}

/// Lex `sql`. Never fails: an unterminated literal or comment extends to the end of the text (the
/// backend reports the syntax error).
pub fn lex(sql: &str, escapes: Escapes) -> Vec<Token> {
    let bytes = sql.as_bytes();
    let mut out = Vec::new();
    let mut chars = sql.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        let tok = match c {
            c if c.is_whitespace() => continue,
            '\'' => {
                let backslash = escapes == Escapes::Backslash
                    || out.last().is_some_and(|t: &Token| {
                        t.tok == Tok::Word && t.end == start && sql[t.start..t.end].eq_ignore_ascii_case("e")
                    });
                if backslash && out.last().is_some_and(|t: &Token| t.tok == Tok::Word && t.end == start) {
                    // `E'...'`: the prefix belongs to the literal.
                    out.pop();
                }
                let mut end = sql.len();
                while let Some((i, c)) = chars.next() {
                    if backslash && c == '\\' {
                        chars.next();
                    } else if c == '\'' {
                        if chars.peek().is_some_and(|&(_, n)| n == '\'') {
                            chars.next();
                        } else {
                            end = i + 1;
                            break;
                        }
                    }
                }
                out.push(Token { tok: Tok::Str, start, end });
                continue;
            }
            '"' | '`' => {
                let quote = c;
                let mut name = String::new();
                let mut end = sql.len();
                while let Some((i, c)) = chars.next() {
                    if c == quote {
                        if chars.peek().is_some_and(|&(_, n)| n == quote) {
                            chars.next();
                            name.push(quote);
                        } else {
                            end = i + 1;
                            break;
                        }
                    } else {
                        name.push(c);
                    }
                }
                out.push(Token { tok: Tok::Quoted(name), start, end });
                continue;
            }
            '-' if chars.peek().is_some_and(|&(_, n)| n == '-') => {
                let mut end = sql.len();
                for (i, c) in chars.by_ref() {
                    if c == '\n' {
                        end = i;
                        break;
                    }
                }
                out.push(Token { tok: Tok::Comment, start, end });
                continue;
            }
            '/' if chars.peek().is_some_and(|&(_, n)| n == '*') => {
                chars.next();
                let mut depth = 1usize;
                let mut end = sql.len();
                while let Some((i, c)) = chars.next() {
                    if c == '*' && chars.peek().is_some_and(|&(_, n)| n == '/') {
                        chars.next();
                        depth -= 1;
                        if depth == 0 {
                            end = i + 2;
                            break;
                        }
                    } else if c == '/' && chars.peek().is_some_and(|&(_, n)| n == '*') {
                        chars.next();
                        depth += 1;
                    }
                }
                out.push(Token { tok: Tok::Comment, start, end });
                continue;
            }
            '$' => {
                let glued = out.last().is_some_and(|t: &Token| t.end == start && matches!(t.tok, Tok::Word | Tok::Number));
                let rest = &sql[start + 1..];
                let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
                if digits > 0 && !glued {
                    for _ in 0..digits {
                        chars.next();
                    }
                    let end = start + 1 + digits;
                    // An index too large for usize cannot name a parameter that exists.
                    let n = sql[start + 1..end].parse::<usize>().unwrap_or(usize::MAX);
                    out.push(Token { tok: Tok::Placeholder(n), start, end });
                    continue;
                }
                // Dollar quoting: `$$...$$` or `$tag$...$tag$`.
                let tag_len = rest
                    .char_indices()
                    .take_while(|&(i, c)| if i == 0 { is_ident_start(c) } else { is_ident_char(c) && c != '$' })
                    .map(|(i, c)| i + c.len_utf8())
                    .last()
                    .unwrap_or(0);
                if !glued && rest[tag_len..].starts_with('$') {
                    let delimiter = &sql[start..start + tag_len + 2];
                    let body_start = start + delimiter.len();
                    let end = sql[body_start..].find(delimiter).map_or(sql.len(), |i| body_start + i + delimiter.len());
                    while chars.peek().is_some_and(|&(i, _)| i < end) {
                        chars.next();
                    }
                    out.push(Token { tok: Tok::Str, start, end });
                    continue;
                }
                Tok::Other('$')
            }
            ';' => Tok::Semicolon,
            '(' => Tok::LParen,
            c if is_ident_start(c) => {
                let mut end = start + c.len_utf8();
                while let Some(&(i, n)) = chars.peek() {
                    if !is_ident_char(n) {
                        break;
                    }
                    chars.next();
                    end = i + n.len_utf8();
                }
                out.push(Token { tok: Tok::Word, start, end });
                continue;
            }
            c if c.is_ascii_digit() => {
                let mut end = start + 1;
                while let Some(&(i, n)) = chars.peek() {
                    let exponent_sign = (n == '+' || n == '-') && matches!(bytes[i - 1], b'e' | b'E');
                    if !(n.is_ascii_alphanumeric() || n == '.' || n == '_' || exponent_sign) {
                        break;
                    }
                    chars.next();
                    end = i + 1;
                }
                out.push(Token { tok: Tok::Number, start, end });
                continue;
            }
            other => Tok::Other(other),
        };
        out.push(Token { tok, start, end: start + c.len_utf8() });
    }
    out
}

/// The statements of a simple-query string: split at top-level `;`, trimmed, without the ones that
/// are empty or only comments. Order is kept.
pub fn split_statements(sql: &str, escapes: Escapes) -> Vec<&str> {
    let mut out = Vec::new();
    let mut begin = 0;
    let mut has_code = false;
    for t in lex(sql, escapes) {
        match t.tok {
            Tok::Semicolon => {
                if has_code {
                    out.push(sql[begin..t.start].trim());
                }
                begin = t.end;
                has_code = false;
            }
            Tok::Comment => {}
            _ => has_code = true,
        }
    }
    if has_code {
        out.push(sql[begin..].trim());
    }
    out
}

/// Lower-cased bare words and quoted identifiers, in order, without comments and literals.
fn words(tokens: &[Token], sql: &str) -> Vec<String> {
    tokens
        .iter()
        .filter_map(|t| match &t.tok {
            Tok::Word => Some(sql[t.start..t.end].to_ascii_lowercase()),
            Tok::Quoted(name) => Some(name.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

/// What a single statement is, as far as the wire protocol is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatementKind {
    /// `BEGIN`, `START TRANSACTION`.
    Begin,
    /// `COMMIT`, `END`.
    Commit,
    /// `ROLLBACK`, `ABORT` (not `ROLLBACK TO SAVEPOINT`).
    Rollback,
    /// Transaction statements answered as no-ops with this command tag: `SAVEPOINT`, `RELEASE`,
    /// `ROLLBACK TO`, `SET TRANSACTION`, `SET SESSION CHARACTERISTICS`, `DISCARD`, `DEALLOCATE`.
    NoOp(&'static str),
    /// `SET [SESSION | LOCAL] name {= | TO} value`, `SET TIME ZONE value`, `SET NAMES value`;
    /// `local` for `SET LOCAL` (until the end of the transaction).
    Set { name: String, value: String, local: bool },
    /// `RESET name`; `None` = `RESET ALL`.
    Reset(Option<String>),
    /// `SHOW name` of a setting; `None` = `SHOW ALL`.
    ShowSetting(Option<String>),
    /// `DECLARE name [NO SCROLL] CURSOR [WITH[OUT] HOLD] FOR query`.
    Declare { name: String, query: String, hold: bool },
    /// `FETCH` (or, with `move_only`, `MOVE`) forward: `count` rows, `None` = `ALL`.
    Fetch { name: String, count: Option<u64>, move_only: bool },
    /// `CLOSE name`; `None` = `CLOSE ALL`.
    Close(Option<String>),
    /// A cursor statement edgelens does not run, with its SQLSTATE and the reason (a `BINARY` or
    /// backward cursor).
    Unsupported { state: &'static str, reason: String },
    /// Anything else: a query for the catalog or the backend (`SELECT`, `WITH`, `VALUES`, `SHOW
    /// TABLES`, `EXPLAIN`, … and everything the read-only guard refuses).
    Query,
}

/// `SHOW` forms that are statements of the backend (DataFusion/ClickHouse), not settings.
const BACKEND_SHOW: &[&str] = &["tables", "columns", "functions", "databases", "schemas", "catalogs", "views", "create", "full"];

/// Classify one statement (as returned by [`split_statements`]).
pub fn classify(sql: &str, escapes: Escapes) -> StatementKind {
    let tokens: Vec<Token> = lex(sql, escapes).into_iter().filter(|t| t.tok != Tok::Comment).collect();
    let w = words(&tokens, sql);
    let first = w.first().map(String::as_str).unwrap_or("");
    let second = w.get(1).map(String::as_str).unwrap_or("");
    match first {
        "begin" => StatementKind::Begin,
        "start" if second == "transaction" => StatementKind::Begin,
        "commit" | "end" => StatementKind::Commit,
        "rollback" | "abort" if w.iter().any(|x| x == "to") => StatementKind::NoOp("ROLLBACK"),
        "rollback" | "abort" => StatementKind::Rollback,
        "savepoint" => StatementKind::NoOp("SAVEPOINT"),
        "release" => StatementKind::NoOp("RELEASE"),
        "discard" => StatementKind::NoOp("DISCARD ALL"),
        "deallocate" => StatementKind::NoOp("DEALLOCATE"),
        "set" => classify_set(&tokens, sql),
        "declare" => classify_declare(&tokens, sql),
        "fetch" | "move" => classify_fetch(&tokens, sql, first == "move"),
        "close" => match (tokens.get(1).and_then(|t| cursor_name(t, sql)), tokens.len()) {
            (Some(name), 2) if name == "all" && tokens[1].tok == Tok::Word => StatementKind::Close(None),
            (Some(name), 2) => StatementKind::Close(Some(name)),
            _ => StatementKind::Unsupported { state: "42000", reason: "CLOSE takes one cursor name or ALL".into() },
        },
        "reset" => match second {
            "all" | "" => StatementKind::Reset(None),
            _ => StatementKind::Reset(Some(dotted_name(&tokens[1..], sql))),
        },
        "show" if !BACKEND_SHOW.contains(&second) => {
            let rest = &tokens[1..];
            match second {
                "all" => StatementKind::ShowSetting(None),
                "transaction" => StatementKind::ShowSetting(Some("transaction_isolation".into())),
                "time" => StatementKind::ShowSetting(Some("timezone".into())),
                "" => StatementKind::Query,
                _ if rest.iter().all(|t| matches!(t.tok, Tok::Word | Tok::Quoted(_) | Tok::Other('.'))) => {
                    StatementKind::ShowSetting(Some(dotted_name(rest, sql)))
                }
                _ => StatementKind::Query,
            }
        }
        _ => StatementKind::Query,
    }
}

/// A cursor's name: a bare word lower-cased, a quoted name as written.
fn cursor_name(t: &Token, sql: &str) -> Option<String> {
    match &t.tok {
        Tok::Word => Some(sql[t.start..t.end].to_ascii_lowercase()),
        Tok::Quoted(q) => Some(q.clone()),
        _ => None,
    }
}

fn classify_declare(tokens: &[Token], sql: &str) -> StatementKind {
    let word = |i: usize| tokens.get(i).filter(|t| t.tok == Tok::Word).map(|t| sql[t.start..t.end].to_ascii_lowercase());
    let Some(name) = tokens.get(1).and_then(|t| cursor_name(t, sql)) else {
        return StatementKind::Unsupported { state: "42000", reason: "DECLARE needs a cursor name".into() };
    };
    let Some(for_at) = (2..tokens.len()).find(|&i| word(i).as_deref() == Some("for")) else {
        return StatementKind::Unsupported { state: "42000", reason: "DECLARE name CURSOR FOR query: no FOR".into() };
    };
    let options: Vec<String> = (2..for_at).filter_map(word).collect();
    if !options.iter().any(|o| o == "cursor") {
        return StatementKind::Unsupported { state: "42000", reason: "DECLARE name CURSOR FOR query: no CURSOR".into() };
    }
    if options.iter().any(|o| o == "binary") {
        return StatementKind::Unsupported { state: "42000", reason: "BINARY cursors are not supported: fetch rows in text or use the extended protocol's binary results".into() };
    }
    if let Some(odd) = options.iter().find(|o| !["cursor", "no", "scroll", "asensitive", "insensitive", "with", "without", "hold"].contains(&o.as_str())) {
        return StatementKind::Unsupported { state: "42000", reason: format!("DECLARE option {} is not supported", odd.to_ascii_uppercase()) };
    }
    let hold = options.windows(2).any(|w| w[0] == "with" && w[1] == "hold");
    match tokens.get(for_at + 1) {
        Some(t) => StatementKind::Declare { name, query: sql[t.start..].trim().to_owned(), hold },
        None => StatementKind::Unsupported { state: "42000", reason: "DECLARE name CURSOR FOR query: no query".into() },
    }
}

/// `FETCH [NEXT | FORWARD [n | ALL] | n | ALL] [FROM | IN] name` (and `MOVE`). Backward and absolute
/// moves are not supported: edgelens cursors are `NO SCROLL`.
fn classify_fetch(tokens: &[Token], sql: &str, move_only: bool) -> StatementKind {
    let verb = if move_only { "MOVE" } else { "FETCH" };
    let text = |t: &Token| sql[t.start..t.end].to_ascii_lowercase();
    let mut rest = &tokens[1..];
    let Some((last, direction)) = rest.split_last() else {
        return StatementKind::Unsupported { state: "42000", reason: format!("{verb} needs a cursor name") };
    };
    let Some(name) = cursor_name(last, sql) else {
        return StatementKind::Unsupported { state: "42000", reason: format!("{verb} needs a cursor name") };
    };
    rest = direction;
    if rest.last().is_some_and(|t| t.tok == Tok::Word && matches!(text(t).as_str(), "from" | "in")) {
        rest = &rest[..rest.len() - 1];
    }
    let count = |t: &Token| -> Option<Option<u64>> {
        match t.tok {
            Tok::Number => text(t).parse::<u64>().ok().map(Some),
            Tok::Word if text(t) == "all" => Some(None),
            _ => None,
        }
    };
    let count = match rest {
        [] => Some(Some(1)),
        [one] if one.tok == Tok::Word && text(one) == "next" => Some(Some(1)),
        [one] if one.tok == Tok::Word && text(one) == "forward" => Some(Some(1)),
        [one] => count(one),
        [fw, n] if fw.tok == Tok::Word && text(fw) == "forward" => count(n),
        _ => None,
    };
    match count {
        Some(count) => StatementKind::Fetch { name, count, move_only },
        None => StatementKind::Unsupported { state: "55000", reason: format!(
            "cursor can only scan forward: {verb} {} is not supported (NEXT, FORWARD [n | ALL], n, ALL are); edgelens cursors are NO SCROLL",
            sql[tokens[1].start..last.start].trim()
        ) },
    }
}

/// `a.b.c` from the leading word/`.` tokens, lower-cased.
fn dotted_name(tokens: &[Token], sql: &str) -> String {
    let mut name = String::new();
    for t in tokens {
        match &t.tok {
            Tok::Word => name.push_str(&sql[t.start..t.end].to_ascii_lowercase()),
            Tok::Quoted(q) => name.push_str(&q.to_ascii_lowercase()),
            Tok::Other('.') => name.push('.'),
            _ => break,
        }
    }
    name
}

fn classify_set(tokens: &[Token], sql: &str) -> StatementKind {
    let word = |t: &Token| (t.tok == Tok::Word).then(|| sql[t.start..t.end].to_ascii_lowercase());
    let mut rest = &tokens[1..];
    let local = rest.first().and_then(word).is_some_and(|w| w == "local");
    if local || rest.first().and_then(word).is_some_and(|w| w == "session") {
        rest = &rest[1..];
    }
    match rest.first().and_then(word).as_deref() {
        Some("transaction") => return StatementKind::NoOp("SET"),
        Some("session") | Some("characteristics") => return StatementKind::NoOp("SET"),
        Some("time") if rest.get(1).and_then(word).as_deref() == Some("zone") => {
            return StatementKind::Set { name: "timezone".into(), value: setting_value(&rest[2..], sql), local };
        }
        Some("names") => return StatementKind::Set { name: "client_encoding".into(), value: setting_value(&rest[1..], sql), local },
        _ => {}
    }
    // `name = value` or `name TO value`: the first `=` or `TO` word after the name splits them.
    let split = rest.iter().enumerate().skip(1).find(|(_, t)| t.tok == Tok::Other('=') || word(t).as_deref() == Some("to")).map(|(i, _)| i);
    let (name, value_tokens) = match split {
        Some(i) => (dotted_name(&rest[..i], sql), &rest[i + 1..]),
        None => (dotted_name(rest, sql), &rest[rest.len()..]),
    };
    StatementKind::Set { name, value: setting_value(value_tokens, sql), local }
}

/// The value of a `SET`: its tokens' text with string literals unquoted, list items joined by `, `.
fn setting_value(tokens: &[Token], sql: &str) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current = String::new();
    for t in tokens {
        match &t.tok {
            Tok::Other(',') => parts.push(std::mem::take(&mut current)),
            Tok::Str => current.push_str(&unquote_string(&sql[t.start..t.end])),
            Tok::Quoted(q) => current.push_str(q),
            _ => current.push_str(&sql[t.start..t.end]),
        }
    }
    parts.push(current);
    parts.iter().map(|p| p.trim()).collect::<Vec<_>>().join(", ")
}

/// The content of a standard `'...'` literal (`''` → `'`).
fn unquote_string(literal: &str) -> String {
    let inner = literal.strip_prefix('\'').unwrap_or(literal);
    let inner = inner.strip_suffix('\'').unwrap_or(inner);
    inner.replace("''", "'")
}

/// The highest `$n` in `sql` (0 when there are none).
pub fn parameter_count(sql: &str, escapes: Escapes) -> usize {
    lex(sql, escapes)
        .iter()
        .filter_map(|t| match t.tok {
            Tok::Placeholder(n) => Some(n),
            _ => None,
        })
        .max()
        .unwrap_or(0)
}

/// The `$n` cast right where they are written (`$1::int`, `$2::timestamptz`, `$3::text[]`), with
/// the type name lower-cased, without `pg_catalog.` (`int`, `double precision`, `text[]`).
pub fn placeholder_casts(sql: &str, escapes: Escapes) -> Vec<(usize, String)> {
    let tokens: Vec<Token> = lex(sql, escapes).into_iter().filter(|t| t.tok != Tok::Comment).collect();
    let mut out = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        let Tok::Placeholder(n) = t.tok else { continue };
        if !(tokens.get(i + 1).is_some_and(|t| t.tok == Tok::Other(':')) && tokens.get(i + 2).is_some_and(|t| t.tok == Tok::Other(':'))) {
            continue;
        }
        let word = |at: usize| -> Option<String> {
            tokens.get(at).and_then(|t| match &t.tok {
                Tok::Word => Some(sql[t.start..t.end].to_ascii_lowercase()),
                Tok::Quoted(q) => Some(q.to_ascii_lowercase()),
                _ => None,
            })
        };
        let mut at = i + 3;
        if word(at).as_deref() == Some("pg_catalog") && tokens.get(at + 1).is_some_and(|t| t.tok == Tok::Other('.')) {
            at += 2;
        }
        let Some(mut name) = word(at) else { continue };
        at += 1;
        // A type modifier: `varchar(20)`, `numeric(10, 2)`, `timestamp(3)`.
        let skip_modifier = |at: &mut usize| {
            if tokens.get(*at).is_some_and(|t| t.tok == Tok::LParen) {
                if let Some(close) = (*at + 1..tokens.len()).find(|&j| tokens[j].tok == Tok::Other(')')) {
                    *at = close + 1;
                }
            }
        };
        skip_modifier(&mut at);
        // The multi-word type names.
        let follows: &[&[&str]] = match name.as_str() {
            "double" => &[&["precision"]],
            "character" => &[&["varying"]],
            "timestamp" | "time" => &[&["with", "time", "zone"], &["without", "time", "zone"]],
            _ => &[],
        };
        if let Some(rest) = follows.iter().find(|rest| rest.iter().enumerate().all(|(k, w)| word(at + k).as_deref() == Some(*w))) {
            for w in *rest {
                name.push(' ');
                name.push_str(w);
            }
            at += rest.len();
        }
        skip_modifier(&mut at);
        if tokens.get(at).is_some_and(|t| t.tok == Tok::Other('[')) && tokens.get(at + 1).is_some_and(|t| t.tok == Tok::Other(']')) {
            name.push_str("[]");
        }
        if !name.is_empty() {
            out.push((n, name));
        }
    }
    out
}

/// The `$n` that are row counts (`LIMIT $n`, `OFFSET $n`, `FETCH FIRST $n`): integers whatever
/// the planner infers.
pub fn row_count_parameters(sql: &str, escapes: Escapes) -> Vec<usize> {
    let tokens: Vec<Token> = lex(sql, escapes).into_iter().filter(|t| t.tok != Tok::Comment).collect();
    tokens
        .windows(2)
        .filter_map(|w| match (&w[0].tok, &w[1].tok) {
            (Tok::Word, Tok::Placeholder(n))
                if matches!(sql[w[0].start..w[0].end].to_ascii_lowercase().as_str(), "limit" | "offset" | "first" | "next") =>
            {
                Some(*n)
            }
            _ => None,
        })
        .collect()
}

/// Replace every `$n` outside literals, identifiers and comments with `literal(n)` (1-based).
pub fn substitute_parameters<E>(
    sql: &str,
    escapes: Escapes,
    mut literal: impl FnMut(usize) -> Result<String, E>,
) -> Result<String, E> {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut copied = 0;
    // A literal glued to a neighbouring word or `$` would lex differently (`$1$$` is a parameter
    // then a dollar quote; `NULL$$` is one identifier): such neighbours get a space between.
    let glues = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'$' || !b.is_ascii());
    for t in lex(sql, escapes) {
        if let Tok::Placeholder(n) = t.tok {
            out.push_str(&sql[copied..t.start]);
            if t.start > 0 && glues(sql.as_bytes().get(t.start - 1)) {
                out.push(' ');
            }
            out.push_str(&literal(n)?);
            if glues(sql.as_bytes().get(t.end)) {
                out.push(' ');
            }
            copied = t.end;
        }
    }
    out.push_str(&sql[copied..]);
    Ok(out)
}

/// Schemas whose tables are the PostgreSQL catalog.
pub const CATALOG_SCHEMAS: &[&str] = &["pg_catalog", "information_schema"];

/// PostgreSQL's `pg_*` functions the lake has itself (`pg_typeof(requests)`): a call of one reads
/// no catalog.
pub const LAKE_PG_FUNCTIONS: &[&str] = &["pg_typeof"];

/// Whether a statement reads the PostgreSQL catalog: it names `pg_catalog` or `information_schema`,
/// reads a `pg_*` relation (in a `FROM` list or after `JOIN`), or calls one of `functions` (the
/// catalog's session functions such as `version()`) or a `pg_*` function (but those of
/// [`LAKE_PG_FUNCTIONS`]), or uses a session
/// keyword such as `current_user`. A column or alias named `pg_…` is not the catalog's.
pub fn reads_catalog(sql: &str, functions: &[&str]) -> bool {
    let tokens: Vec<Token> = lex(sql, Escapes::Standard).into_iter().filter(|t| t.tok != Tok::Comment).collect();
    let name_of = |t: &Token| match &t.tok {
        Tok::Word => Some(sql[t.start..t.end].to_ascii_lowercase()),
        Tok::Quoted(q) => Some(q.to_ascii_lowercase()),
        _ => None,
    };
    // Whether token `i` stands where a relation is named: the nearest keyword before it (outside
    // brackets closed before it) is `FROM` or `JOIN`.
    let relation_position = |i: usize| {
        let mut depth = 0i32;
        for t in tokens[..i].iter().rev() {
            match t.tok {
                Tok::Other(')') => depth += 1,
                Tok::LParen if depth == 0 => return false,
                Tok::LParen => depth -= 1,
                Tok::Word if depth == 0 => match sql[t.start..t.end].to_ascii_lowercase().as_str() {
                    "from" | "join" => return true,
                    "select" | "where" | "on" | "using" | "group" | "order" | "having" | "limit" | "offset" | "window" | "values" | "returning" | "set" => return false,
                    _ => {}
                },
                _ => {}
            }
        }
        false
    };
    tokens.iter().enumerate().any(|(i, t)| {
        let Some(name) = name_of(t) else { return false };
        let called = tokens.get(i + 1).is_some_and(|n| n.tok == Tok::LParen);
        CATALOG_SCHEMAS.contains(&name.as_str())
            || (name.starts_with("pg_") && !called && relation_position(i))
            || (called && (functions.contains(&name.as_str()) || (name.starts_with("pg_") && !LAKE_PG_FUNCTIONS.contains(&name.as_str()))))
            || matches!(name.as_str(), "current_user" | "session_user" | "current_role" | "current_catalog")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_top_level_semicolons_only() {
        let sql = "SELECT 'a;b'; SELECT \"x;y\" FROM t -- c;\n; /* ; */ ;; SELECT $$;$$";
        assert_eq!(split_statements(sql, Escapes::Standard), vec!["SELECT 'a;b'", "SELECT \"x;y\" FROM t -- c;", "SELECT $$;$$"]);
        assert!(split_statements(" ; -- nothing\n ;/* x */", Escapes::Standard).is_empty());
        assert_eq!(split_statements("select 1", Escapes::Standard), vec!["select 1"]);
        // ClickHouse escapes quotes with a backslash.
        assert_eq!(split_statements(r"SELECT 'a\';b'; SELECT 2", Escapes::Backslash), vec![r"SELECT 'a\';b'", "SELECT 2"]);
        assert_eq!(split_statements(r"SELECT E'a\';b'; SELECT 2", Escapes::Standard), vec![r"SELECT E'a\';b'", "SELECT 2"]);
    }

    #[test]
    fn placeholders_outside_literals_are_substituted() {
        let sql = "SELECT '$1', \"$2\", $1 -- $3\n, $10, x$1, $2 /* $4 */";
        assert_eq!(parameter_count(sql, Escapes::Standard), 10);
        let out = substitute_parameters::<()>(sql, Escapes::Standard, |n| Ok(format!("<{n}>"))).unwrap();
        assert_eq!(out, "SELECT '$1', \"$2\", <1> -- $3\n, <10>, x$1, <2> /* $4 */");
        assert_eq!(parameter_count("SELECT $$ $1 $$, $tag$ $2 $tag$", Escapes::Standard), 0);
        assert_eq!(row_count_parameters("SELECT x FROM t WHERE y = $1 LIMIT $2 OFFSET $3", Escapes::Standard), vec![2, 3]);
        let err = substitute_parameters(sql, Escapes::Standard, |n| if n == 10 { Err(n) } else { Ok(String::new()) });
        assert_eq!(err, Err(10));
    }

    /// The pg_wire fuzz target's find: `$22$$ … $$` is a parameter then a dollar-quoted string, but
    /// `NULL$$ …` glued together is one identifier, which let a `$n` inside the quote count again.
    #[test]
    fn a_substituted_literal_never_glues_to_its_neighbours() {
        let sub = |sql: &str| substitute_parameters::<()>(sql, Escapes::Standard, |_| Ok("NULL".into())).unwrap();
        assert_eq!(sub("SELECT $1$$ $2 $$"), "SELECT NULL $$ $2 $$");
        assert_eq!(parameter_count(&sub("SELECT $1$$ $2 $$"), Escapes::Standard), 0);
        assert_eq!(sub("SELECT 1+$1,$2_x"), "SELECT 1+NULL,NULL _x");
        assert_eq!(sub("SELECT ($1)"), "SELECT (NULL)");
        let found = "^\0\0\u{7f}*E\0\u{0}2222222\u{4}$22$$$\0\u{3}\0\0F;!se 'a\\';^\0\0\u{7f}*E\0\u{0}2222222\u{4}$22$$$ \u{8}\0";
        for escapes in [Escapes::Standard, Escapes::Backslash] {
            let out = substitute_parameters::<()>(found, escapes, |_| Ok("NULL".into())).unwrap();
            assert_eq!(parameter_count(&out, escapes), 0, "{out:?}");
        }
    }

    #[test]
    fn classifies_session_and_transaction_statements() {
        use StatementKind::*;
        let c = |s| classify(s, Escapes::Standard);
        assert_eq!(c("BEGIN"), Begin);
        assert_eq!(c("begin isolation level read committed"), Begin);
        assert_eq!(c("START TRANSACTION READ ONLY"), Begin);
        assert_eq!(c("commit"), Commit);
        assert_eq!(c("END"), Commit);
        assert_eq!(c("ROLLBACK"), Rollback);
        assert_eq!(c("ROLLBACK TO SAVEPOINT s1"), NoOp("ROLLBACK"));
        assert_eq!(c("SAVEPOINT s1"), NoOp("SAVEPOINT"));
        assert_eq!(c("SET extra_float_digits = 3"), Set { name: "extra_float_digits".into(), value: "3".into(), local: false });
        assert_eq!(c("set application_name to 'psql'"), Set { name: "application_name".into(), value: "psql".into(), local: false });
        assert_eq!(c("SET SESSION search_path TO public, \"$user\""), Set { name: "search_path".into(), value: "public, $user".into(), local: false });
        assert_eq!(c("SET TIME ZONE 'UTC'"), Set { name: "timezone".into(), value: "UTC".into(), local: false });
        assert_eq!(c("SET LOCAL statement_timeout TO 5000"), Set { name: "statement_timeout".into(), value: "5000".into(), local: true });
        assert_eq!(c("SET datestyle = ISO, MDY"), Set { name: "datestyle".into(), value: "ISO, MDY".into(), local: false });
        assert_eq!(c("set local time zone 'Europe/Berlin'"), Set { name: "timezone".into(), value: "Europe/Berlin".into(), local: true });
        assert_eq!(c("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE"), NoOp("SET"));
        assert_eq!(c("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY"), NoOp("SET"));
        assert_eq!(c("RESET ALL"), Reset(None));
        assert_eq!(c("RESET search_path"), Reset(Some("search_path".into())));
        assert_eq!(c("SHOW server_version"), ShowSetting(Some("server_version".into())));
        assert_eq!(c("show ALL"), ShowSetting(None));
        assert_eq!(c("SHOW TRANSACTION ISOLATION LEVEL"), ShowSetting(Some("transaction_isolation".into())));
        assert_eq!(c("SHOW TABLES"), Query);
        assert_eq!(c("SHOW COLUMNS FROM traffic_1m"), Query);
        assert_eq!(c("-- hello\nSELECT 1"), Query);
        assert_eq!(c("DROP TABLE traffic_1m"), Query);
    }

    #[test]
    fn finds_casts_of_placeholders() {
        let casts = placeholder_casts(
            "SELECT $1::int, $2::pg_catalog.TIMESTAMPTZ, $3 :: double precision FROM t WHERE x = $4::varchar(20)[] AND y = $5 AND z = $6::\"numeric\"(10, 2) AND w > $7::timestamp(3) with time zone -- $8::int",
            Escapes::Standard,
        );
        assert_eq!(
            casts,
            vec![
                (1, "int".into()),
                (2, "timestamptz".into()),
                (3, "double precision".into()),
                (4, "varchar[]".into()),
                (6, "numeric".into()),
                (7, "timestamp with time zone".into())
            ]
        );
    }

    #[test]
    fn classifies_cursor_statements() {
        let c = |sql: &str| classify(sql, Escapes::Standard);
        assert_eq!(
            c("DECLARE _psql_cursor NO SCROLL CURSOR FOR\nSELECT 1 AS \"for\""),
            StatementKind::Declare { name: "_psql_cursor".into(), query: "SELECT 1 AS \"for\"".into(), hold: false }
        );
        assert_eq!(
            c("declare \"My C\" cursor with hold for select 'for'"),
            StatementKind::Declare { name: "My C".into(), query: "select 'for'".into(), hold: true }
        );
        assert!(matches!(c("DECLARE c BINARY CURSOR FOR SELECT 1"), StatementKind::Unsupported { reason, .. } if reason.contains("BINARY")));
        assert!(matches!(c("DECLARE c CURSOR"), StatementKind::Unsupported { .. }));
        assert!(matches!(c("DECLARE c FOR SELECT 1"), StatementKind::Unsupported { .. }));
        let fetch = |name: &str, count: Option<u64>| StatementKind::Fetch { name: name.into(), count, move_only: false };
        assert_eq!(c("FETCH FORWARD 100 FROM _psql_cursor"), fetch("_psql_cursor", Some(100)));
        assert_eq!(c("FETCH forward 2000 FROM \"c1\""), fetch("c1", Some(2000)));
        assert_eq!(c("FETCH c"), fetch("c", Some(1)));
        assert_eq!(c("FETCH NEXT IN c"), fetch("c", Some(1)));
        assert_eq!(c("FETCH ALL FROM C"), fetch("c", None));
        assert_eq!(c("FETCH FORWARD ALL c"), fetch("c", None));
        assert_eq!(c("FETCH 5 c"), fetch("c", Some(5)));
        assert_eq!(c("MOVE FORWARD 3 IN c"), StatementKind::Fetch { name: "c".into(), count: Some(3), move_only: true });
        for backward in ["FETCH PRIOR FROM c", "FETCH BACKWARD 2 FROM c", "FETCH ABSOLUTE 1 FROM c", "FETCH -1 FROM c", "FETCH"] {
            assert!(matches!(c(backward), StatementKind::Unsupported { .. }), "{backward}");
        }
        assert_eq!(c("CLOSE _psql_cursor"), StatementKind::Close(Some("_psql_cursor".into())));
        assert_eq!(c("close all"), StatementKind::Close(None));
        assert_eq!(c("CLOSE \"all\""), StatementKind::Close(Some("all".into())));
    }

    #[test]
    fn detects_catalog_reads() {
        let f = &["version", "current_database", "current_setting"];
        assert!(reads_catalog("SELECT version()", f));
        assert!(reads_catalog("select * from pg_catalog.pg_class", f));
        assert!(reads_catalog("SELECT * FROM pg_namespace", f));
        assert!(reads_catalog("SELECT table_name FROM INFORMATION_SCHEMA.tables", f));
        assert!(reads_catalog("SELECT current_user", f));
        assert!(reads_catalog("SELECT current_setting('server_version_num')::int", f));
        assert!(!reads_catalog("SELECT site, version FROM traffic_1m", f));
        // Regression: any `pg_…` word sent the statement to the catalog, a column alias too.
        assert!(!reads_catalog("SELECT count(*) AS pg_rows FROM traffic_1m", f));
        assert!(!reads_catalog("SELECT sum(requests) pg_total, site FROM traffic_1m t WHERE t.site <> 'pg_x' GROUP BY site ORDER BY pg_total", f));
        assert!(!reads_catalog("SELECT x.pg_n FROM (SELECT 1 AS pg_n) x", f));
        assert!(reads_catalog("SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace", f));
        assert!(reads_catalog("SELECT 1 FROM traffic_1m t, pg_type ty WHERE ty.oid = 1", f));
        assert!(reads_catalog("SELECT 1 FROM (SELECT 1) x, \"pg_type\"", f));
        assert!(reads_catalog("SELECT * FROM traffic_1m WHERE site IN (SELECT relname FROM pg_class)", f));
        assert!(reads_catalog("SELECT pg_get_userbyid(1)", f));
        assert!(!reads_catalog("SELECT 'pg_class', \"a\" FROM traffic_1m -- information_schema", f));
        assert!(!reads_catalog("SELECT pg_typeof(requests) FROM traffic_1m", f));
    }
}
