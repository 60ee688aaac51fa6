//! Reading a password from a PostgreSQL password file (`~/.pgpass` or
//! `$PGPASSFILE`) as libpq does: lines `host:port:database:user:password`,
//! `*` matching anything, `\:` and `\\` escaping, `#` starting a comment.
//! A file readable by group or others is ignored with a warning, as libpq
//! ignores it.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// What a connection is for, to match against the file's lines.
pub(super) struct Wanted<'a> {
    /// The host name, or `localhost` for a Unix socket.
    pub host: &'a str,
    pub port: u16,
    pub database: &'a str,
    pub user: &'a str,
}

/// The password file libpq would read: `$PGPASSFILE`, else `~/.pgpass`.
pub(super) fn default_file() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("PGPASSFILE") {
        return Some(PathBuf::from(p));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".pgpass"))
}

/// The password of the first line of `file` that matches `want`; `None`
/// when the file is missing, too open, or has no matching line.
pub(super) fn lookup(file: &Path, want: &Wanted<'_>) -> Option<String> {
    let meta = std::fs::metadata(file).ok()?;
    if meta.permissions().mode() & 0o077 != 0 {
        log::warn!(
            "password file {} has group or world access and is ignored; chmod 0600 it",
            file.display()
        );
        return None;
    }
    let text = std::fs::read_to_string(file).ok()?;
    find(&text, want)
}

fn find(text: &str, want: &Wanted<'_>) -> Option<String> {
    let port = want.port.to_string();
    let wanted = [want.host, &port, want.database, want.user];
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let fields = split(line);
        if fields.len() != 5 {
            continue;
        }
        let matches = fields[..4]
            .iter()
            .zip(wanted)
            .all(|(f, w)| f == "*" || f == w);
        if matches {
            return Some(fields[4].clone());
        }
    }
    None
}

/// Splits a line on unescaped colons, undoing the escapes.
fn split(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    fields.last_mut().expect("never empty").push(n);
                }
            }
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => fields.last_mut().expect("never empty").push(c),
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    fn want<'a>(host: &'a str, db: &'a str) -> Wanted<'a> {
        Wanted {
            host,
            port: 5432,
            database: db,
            user: "llmfs",
        }
    }

    #[test]
    fn first_matching_line_wins_with_wildcards_and_escapes() {
        let text = "# comment\n\
                    other:5432:*:llmfs:no\n\
                    localhost:5432:vol:llmfs:a\\:b\\\\c\n\
                    *:*:*:llmfs:fallback\n";
        assert_eq!(
            find(text, &want("localhost", "vol")).as_deref(),
            Some("a:b\\c")
        );
        assert_eq!(find(text, &want("db1", "x")).as_deref(), Some("fallback"));
        assert_eq!(
            find("h:1:d:u\n", &want("h", "d")),
            None,
            "four fields is no line"
        );
    }

    #[test]
    fn a_password_may_hold_colons() {
        assert_eq!(
            find("*:*:*:*:p:q\n", &want("h", "d")).as_deref(),
            Some("p:q")
        );
    }
}
