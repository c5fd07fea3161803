//! The response cache: looking a response up by its key ([`Store::cache_get`]), and the read
//! snapshot that many lookups share ([`Store::begin_read`]). Entries are written with the
//! other writes of a batch ([`WriteOp::Cache`](super::WriteOp::Cache)).

use super::Store;
use super::engine::{Begin, args};
use crate::chat::ChatResponse;
use crate::error::Result;

impl Store {
    /// Opens a read transaction so that many lookups share one snapshot (one WAL read lock
    /// instead of one per lookup); [`Store::end_read`] closes it. Reads only.
    pub fn begin_read(&self) -> Result<()> {
        self.conn.begin(Begin::Read)
    }

    /// Closes a read transaction opened by [`Store::begin_read`] (no-op when none is open).
    pub fn end_read(&self) -> Result<()> {
        if self.conn.in_transaction() {
            self.conn.commit()?;
        }
        Ok(())
    }

    /// True if the variants table has a row with this id (settled: rows still in the staging
    /// log are not seen). One index lookup on a cached statement.
    pub fn has_variant(&self, id: &str) -> Result<bool> {
        self.conn
            .exists("SELECT 1 FROM variants WHERE id = ?1", args![id])
    }

    /// The cached response for `key`, if any. Fast: one index lookup on a cached statement.
    ///
    /// An entry that no longer parses (written by an older cliffprobe with another response
    /// shape) is a miss: the request is simply made again and the entry replaced.
    pub fn cache_get(&self, key: &str) -> Result<Option<ChatResponse>> {
        Ok(self
            .conn
            .query_opt(
                "SELECT response FROM response_cache WHERE key = ?1",
                args![key],
                |row| Ok(serde_json::from_str(&row.text(0)?).ok()),
            )?
            .flatten())
    }
}

pub(super) const CACHE_UPSERT: &str = "INSERT INTO response_cache (key, response, created_at) \
     VALUES (?1, ?2, ?3) ON CONFLICT (key) DO UPDATE SET \
     response = excluded.response, created_at = excluded.created_at";
