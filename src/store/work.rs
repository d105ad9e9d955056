//! A unit of database work and its bounds: the connection (or, behind a
//! transaction pooler, the transaction) a statement runs on, how long the
//! server may take to answer, and how a silent connection is found out.

use std::{
    future::Future,
    ops::{Deref, DerefMut},
    pin::Pin,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use sqlx::{Connection, PgConnection, Postgres, Transaction, pool::PoolConnection};

use super::Error;

/// How long past the statement timeout a statement's answer may take before
/// the connection is deemed dead: a server that stopped answering without
/// closing the connection (a half-open TCP connection, a stalled network)
/// fails the call instead of hanging it, and the pool closes the connection.
pub const ANSWER_GRACE: Duration = Duration::from_secs(1);

/// How long a connection given back to the pool may take to answer a ping
/// (after a call gave up on it mid-statement, it may never): it is closed
/// otherwise, so that a dead connection never holds a place in the pool.
pub(super) const RELEASE_PING: Duration = Duration::from_secs(1);

/// After an exchange went unanswered, connections of the calls' pool given
/// back within this long are pinged (with [`RELEASE_PING`]) before reuse.
/// The one that went silent is given back at once; at other times the
/// check would cost every call's release a round trip.
pub(super) const SUSPECT_AFTER_SILENCE: Duration = Duration::from_secs(1);

/// How long an exchange with the server may take — the statement timeout
/// plus [`ANSWER_GRACE`], unbounded without a statement timeout — and when
/// one last went unanswered.
#[derive(Debug, Clone)]
pub(crate) struct AnswerWithin {
    bound: Duration,
    last_silence: Arc<Mutex<Option<Instant>>>,
}

impl AnswerWithin {
    pub(super) fn new(statement_timeout: Duration) -> Self {
        let bound = match statement_timeout {
            Duration::ZERO => Duration::MAX,
            timeout => timeout + ANSWER_GRACE,
        };
        Self { bound, last_silence: Arc::default() }
    }

    fn silence_now(&self) {
        *self.last_silence.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
    }

    pub(super) fn silence_lately(&self) -> bool {
        let last = *self.last_silence.lock().unwrap_or_else(|e| e.into_inner());
        last.is_some_and(|at| at.elapsed() < SUSPECT_AFTER_SILENCE)
    }
}

/// Bounds a database exchange by the store's [`AnswerWithin`], turning both
/// its failure and its silence into the store's [`Error`].
pub(crate) trait Answer<'a, T> {
    fn within(self, bound: &AnswerWithin) -> Pin<Box<dyn Future<Output = Result<T, Error>> + Send + 'a>>;
}

impl<'a, T, F> Answer<'a, T> for F
where
    F: Future<Output = Result<T, sqlx::Error>> + Send + 'a,
    T: 'a,
{
    fn within(self, bound: &AnswerWithin) -> Pin<Box<dyn Future<Output = Result<T, Error>> + Send + 'a>> {
        let bound = bound.clone();
        Box::pin(async move {
            match tokio::time::timeout(bound.bound, self).await {
                Ok(answer) => Ok(answer?),
                Err(_) => {
                    bound.silence_now();
                    Err(Error::Unavailable(sqlx::Error::Io(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("the database did not answer within {:?}", bound.bound),
                    ))))
                }
            }
        })
    }
}

/// A connection for one unit of work: the session itself, or behind a
/// transaction pooler a transaction carrying the statement timeout. End it
/// with [`Work::done`]; dropped unfinished, its transaction rolls back.
pub(crate) enum Work {
    Session(PoolConnection<Postgres>),
    Transaction(Transaction<'static, Postgres>, AnswerWithin),
}

impl Work {
    /// Commits the unit of work's transaction, if it has one.
    pub(crate) async fn done(self) -> Result<(), Error> {
        if let Self::Transaction(tx, answer_within) = self {
            tx.commit().within(&answer_within).await?;
        }
        Ok(())
    }
}

impl Deref for Work {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        match self {
            Self::Session(connection) => connection,
            Self::Transaction(tx, _) => tx,
        }
    }
}

impl DerefMut for Work {
    fn deref_mut(&mut self) -> &mut PgConnection {
        match self {
            Self::Session(connection) => connection,
            Self::Transaction(tx, _) => tx,
        }
    }
}

/// Whether a pooled connection still answers, checked when it is given back
/// or taken after a long idle (sqlx's own ping waits for ever). An error
/// closes it at once, without the goodbye a silent server would never read.
pub(super) async fn still_answers(conn: &mut PgConnection) -> Result<bool, sqlx::Error> {
    match tokio::time::timeout(RELEASE_PING, conn.ping()).await {
        Ok(answered) => answered.map(|()| true),
        Err(_) => {
            tracing::warn!("closing a database connection that stopped answering");
            Err(sqlx::Error::Io(std::io::ErrorKind::TimedOut.into()))
        }
    }
}
