//! The test harness reaches the real server and the schema contract creates a table there.
use crate::util;

use mysql::prelude::Queryable;

#[test]
fn schema_creates_on_the_real_server() {
    let db = util::TestDb::new("smoke");
    let mut c = db.conn();
    c.query_drop(ipta::store::schema::create_table_sql("logs")).unwrap();
    let comment: Option<String> = c
        .exec_first(
            "SELECT TABLE_COMMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 'logs'",
            (&db.settings.database,),
        )
        .unwrap();
    assert_eq!(comment, Some(format!("ipta-logs v{}", ipta::store::schema::SCHEMA_VERSION)));
}
