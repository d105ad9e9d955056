//! A database of the test's own on the shared PostgreSQL server, so tests
//! run in parallel without seeing each other's rows; dropped when the test
//! ends, pass or fail.

use draft_publisher::{PoolSettings, Store, prepare_database};
use sqlx::Connection;

/// The server the tests use when `DATABASE_URL` is not set.
const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/draft_publisher";

/// A database server that does not exist: nothing listens on port 1.
pub const UNREACHABLE_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:1/none";

/// `DATABASE_URL`, or the local server's default.
pub fn server_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_DATABASE_URL.to_owned())
}

/// `url` with its database name replaced by `database`, keeping the server,
/// credentials and query parameters.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let authority_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let server = match base[authority_end..].find('/') {
        Some(slash) => &base[..authority_end + slash],
        None => base,
    };
    format!("{server}/{database}{query}")
}

/// A uniquely named database on the test server.
pub struct TestDatabase {
    pub url: String,
    name: String,
    admin_url: String,
}

impl Default for TestDatabase {
    fn default() -> Self {
        Self::new()
    }
}

impl TestDatabase {
    /// Names a new database; [`TestDatabase::prepare`] creates it.
    pub fn new() -> Self {
        let server = server_url();
        let name = format!("draft_publisher_test_{}", uuid::Uuid::now_v7().simple());
        Self { url: with_database(&server, &name), admin_url: with_database(&server, "postgres"), name }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Creates the database and applies the migrations, as `serve` does.
    pub async fn prepare(&self, pool: &PoolSettings) -> Store {
        prepare_database(&self.url, pool).await.expect("test database prepared")
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Drop may run inside the test's runtime, which cannot block: use a
        // thread with a runtime of its own.
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(async {
                let mut conn = sqlx::PgConnection::connect(&admin_url).await?;
                let statement = format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#);
                sqlx::raw_sql(sqlx::AssertSqlSafe(statement)).execute(&mut conn).await?;
                anyhow::Ok(())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test database {}", self.name);
        }
    }
}
