//! What to do about a database error, in words: the advice `ipta` prints under the error, with
//! the exact SQL where SQL helps (the user's name quoted as an SQL string, never `'%'` as host,
//! a placeholder for the password).

/// `s` as an SQL string literal: in quotes, with quotes and backslashes doubled, so that a
/// name pasted into the advised SQL stays one value whatever it holds.
fn sql_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// What to do about a database error, in words, with the exact SQL where SQL helps. The
/// password is never printed (a placeholder stands for it).
pub fn advice(err: &crate::store::StoreError, db: &crate::config::DbSettings) -> Option<String> {
    use crate::store::StoreError as E;
    let local = db.effective_socket().is_some() || db.host == "localhost" || db.host == "127.0.0.1";
    // Never '%' (any host): for a remote server the administrator puts in the one address
    // this machine connects from.
    let client_host = if local { "localhost" } else { "CLIENT_HOST" };
    // The user name is pasted into an SQL string literal: quote it as one.
    let user = sql_string(&db.user);
    let setup_sql = format!(
        "  CREATE DATABASE IF NOT EXISTS `{d}` CHARACTER SET utf8mb4;\n  \
         CREATE USER IF NOT EXISTS {u}@'{h}' IDENTIFIED BY 'PASSWORD';\n  \
         GRANT ALL ON `{d}`.* TO {u}@'{h}';{note}",
        d = db.database,
        u = user,
        h = client_host,
        note = if local { "" } else { "\n  (CLIENT_HOST: the address this machine connects from, as the server sees it)" }
    );
    let settings = "Settings come from -h/--db-host, --db-port, --db-socket, -u, -p/-pi, -d, the \
                    IPTA_DB_* environment variables, ~/.ipta-conf and /etc/ipta.conf (ipta --help).";
    match err {
        E::Connect(_) | E::ConnectionLost(_) => Some(format!(
            "Is the server running and reachable at {ep}? On Debian/Ubuntu: sudo service mariadb \
             start (or run ./scripts/provision.sh from the source tree).\n\
             If the server runs but the user or database do not exist yet, create them as the \
             database administrator (e.g. sudo mariadb), with your password for PASSWORD:\n{setup_sql}\n{settings}",
            ep = db.endpoint()
        )),
        E::AccessDenied(_) => Some(format!(
            "The server refused user {u} (wrong password, or no rights on database `{d}`). \
             Check the password (-p/-pi, IPTA_DB_PASS, ~/.ipta-conf); to (re)create the user with \
             its rights, run as the database administrator (e.g. sudo mariadb):\n{setup_sql}\n{settings}",
            u = user,
            d = db.database
        )),
        E::UnknownDatabase(_) => Some(format!(
            "Database `{d}` does not exist. Create it with: ipta --create-db (needs the right to \
             create it), or as the database administrator:\n{setup_sql}",
            d = db.database
        )),
        E::MissingTable(t) => Some(format!(
            "Create the table with: ipta --create-table{}",
            if t == "logs" { String::new() } else { format!(" {t}") }
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advice_quotes_the_user_name_and_never_grants_to_any_host() {
        use crate::store::StoreError;
        let db = crate::config::DbSettings {
            user: "x' IDENTIFIED BY 'known'; GRANT ALL ON *.* TO 'x".into(),
            host: "db.example.net".into(),
            ..Default::default()
        };
        let a = advice(&StoreError::AccessDenied("no".into()), &db).unwrap();
        assert!(
            a.contains("CREATE USER IF NOT EXISTS 'x'' IDENTIFIED BY ''known''; GRANT ALL ON *.* TO ''x'@'CLIENT_HOST'"),
            "{a}"
        );
        assert!(!a.contains("'%'"), "{a}");
        assert_eq!(sql_string(r"a\b'c"), r"'a\\b''c'");
    }
}
