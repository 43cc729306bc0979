//! The KV bucket: opening (or creating) it, reading a document, the compare-and-set loop every
//! decided-once change goes through, and scans of many keys at once.
//!
//! [`NatsAdapter::transact`] reads a document with its revision, applies a pure change
//! (`doc.rs`) and writes the result with `kv.update(key, value, revision)` — or deletes the key,
//! also against the revision, when nothing is left. A write that lost the race (someone wrote
//! the key after the read) is retried from a fresh read, at most [`MAX_ATTEMPTS`] times with a
//! short random back-off; the change is applied again to the fresh document, so the outcome
//! always describes the write that landed.

use std::collections::BTreeMap;
use std::time::Duration;

use async_nats::jetstream;
use async_nats::jetstream::consumer::{push, DeliverPolicy, ReplayPolicy};
use async_nats::jetstream::kv::{self, Operation, UpdateErrorKind};
use async_nats::jetstream::stream::{self, DiscardPolicy, StorageType};
use bytes::Bytes;
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::doc::ChannelDoc;
use super::NatsAdapter;
use crate::adapter::AdapterError;

/// Compare-and-set attempts of one change before it gives up (`AdapterError::Contended`).
const MAX_ATTEMPTS: u32 = 32;
/// Keys one scan returns at most.
const MAX_SCANNED: usize = 1_000_000;
/// A scan reads many keys: it gets this many command timeouts.
const SCAN_TIMEOUTS: u32 = 30;

/// A value kept in the bucket as JSON, deleted when empty.
pub(crate) trait Document: Serialize + DeserializeOwned + Default {
    fn is_empty(&self) -> bool;
}

impl Document for ChannelDoc {
    fn is_empty(&self) -> bool {
        ChannelDoc::is_empty(self)
    }
}

/// Node id (hex) → a count: the sign-ins of one user, the connections of one app.
pub(crate) type PerNode = BTreeMap<String, u64>;

impl Document for PerNode {
    fn is_empty(&self) -> bool {
        self.values().all(|n| *n == 0)
    }
}

/// One key as a scan found it (deleted keys are skipped).
#[derive(Debug, Clone)]
pub(crate) struct Scanned {
    pub key: String,
    pub value: Bytes,
    pub revision: u64,
}

/// What a write does.
enum Write {
    Put(Bytes),
    Delete,
}

/// The document in `value` (absent: the empty document).
pub(crate) fn decode<T: Document>(key: &str, value: Option<&Bytes>) -> Result<T, AdapterError> {
    match value {
        Some(bytes) => {
            serde_json::from_slice(bytes).map_err(|e| AdapterError::Nats(format!("undecodable value at {key}: {e}")))
        }
        None => Ok(T::default()),
    }
}

/// Opens the cluster's bucket, creating it when it does not exist: the stream a KV bucket is
/// (`KV_<bucket>` on `$KV.<bucket>.>`, history 1, file storage, direct gets), made with
/// `create_stream` because async-nats's `create_key_value` first reads the account info in a
/// shape that nats-server 2.9 does not answer.
pub(crate) async fn open_bucket(js: &jetstream::Context, bucket: &str) -> Result<kv::Store, async_nats::Error> {
    if let Ok(store) = js.get_key_value(bucket).await {
        return Ok(store);
    }
    let config = stream::Config {
        name: format!("KV_{bucket}"),
        description: Some("herald cluster state (docs/nats.md)".to_owned()),
        subjects: vec![format!("$KV.{bucket}.>")],
        max_messages_per_subject: 1,
        max_messages: -1,
        max_bytes: -1,
        max_message_size: -1,
        storage: StorageType::File,
        num_replicas: 1,
        discard: DiscardPolicy::New,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        ..Default::default()
    };
    if let Err(e) = js.create_stream(config).await {
        // A peer may have created it meanwhile.
        tracing::debug!(error = %e, bucket, "bucket not created");
    }
    Ok(js.get_key_value(bucket).await?)
}

impl NatsAdapter {
    /// The document at `key` and the revision to write against (0: never written).
    pub(super) async fn read<T: Document>(&self, key: &str) -> Result<(T, u64), AdapterError> {
        let (value, revision) = self.read_raw(key).await?;
        Ok((decode(key, value.as_ref())?, revision))
    }

    /// The value at `key` (`None`: absent or deleted) and the revision to write against.
    pub(super) async fn read_raw(&self, key: &str) -> Result<(Option<Bytes>, u64), AdapterError> {
        let entry = self.run(self.kv.entry(key)).await?;
        Ok(match entry {
            Some(e) if e.operation == Operation::Put => (Some(e.value), e.revision),
            Some(e) => (None, e.revision),
            None => (None, 0),
        })
    }

    /// Applies `change` to the document at `key` and writes it back against the revision it
    /// was read at (see the module docs); returns what the landed change answered.
    pub(super) async fn transact<T: Document, R>(
        &self,
        key: &str,
        mut change: impl FnMut(&mut T) -> R,
    ) -> Result<R, AdapterError> {
        for attempt in 0..MAX_ATTEMPTS {
            let (value, revision) = self.read_raw(key).await?;
            let mut doc: T = decode(key, value.as_ref())?;
            let answer = change(&mut doc);
            let write = if !doc.is_empty() {
                let json = serde_json::to_vec(&doc).map_err(|e| AdapterError::Nats(e.to_string()))?;
                Write::Put(Bytes::from(json))
            } else if value.is_some() {
                Write::Delete
            } else {
                return Ok(answer);
            };
            if self.write(key, write, revision).await? {
                return Ok(answer);
            }
            let ceiling = 200u64 << attempt.min(6);
            tokio::time::sleep(Duration::from_micros(rand::random_range(0..ceiling))).await;
        }
        Err(AdapterError::Contended(key.to_owned()))
    }

    /// Writes against `revision`; false when the key changed since (the race was lost).
    async fn write(&self, key: &str, write: Write, revision: u64) -> Result<bool, AdapterError> {
        let kv = &self.kv;
        self.run(async move {
            let result = match write {
                Write::Put(bytes) => kv.update(key, bytes, revision).await.map(drop),
                Write::Delete => kv.delete_expect_revision(key, Some(revision)).await,
            };
            match result {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => Ok(false),
                Err(e) => Err(e),
            }
        })
        .await
    }

    /// Puts `value` at `key` whatever was there.
    pub(super) async fn put(&self, key: &str, value: Bytes) -> Result<u64, AdapterError> {
        self.run(self.kv.put(key, value)).await
    }

    /// The last value of every live key matching `filter` (a KV key with `*`/`>` wildcards),
    /// read through one ordered consumer (at most [`MAX_SCANNED`] keys). It ends at the
    /// consumer's last pending message, or at the first message as new as the stream was
    /// when the scan began (a key rewritten meanwhile is delivered once, at its new revision,
    /// and the consumer's pending count may then never reach 0). A gap of one command timeout
    /// between messages fails the scan rather than returning part of it.
    pub(super) async fn scan(&self, filter: &str) -> Result<Vec<Scanned>, AdapterError> {
        let prefix = self.kv.prefix.clone();
        let config = push::OrderedConfig {
            deliver_subject: self.client.new_inbox(),
            filter_subject: format!("{prefix}{filter}"),
            deliver_policy: DeliverPolicy::LastPerSubject,
            replay_policy: ReplayPolicy::Instant,
            ..Default::default()
        };
        let (stream, gap) = (&self.kv.stream, self.timing.command);
        let scan = async move {
            let last = stream.get_info().await?.state.last_sequence;
            let consumer = stream.create_consumer(config).await?;
            let mut out = Vec::new();
            if consumer.cached_info().num_pending == 0 {
                return Ok::<_, async_nats::Error>(out);
            }
            let mut messages = consumer.messages().await?;
            loop {
                let Some(message) = tokio::time::timeout(gap, messages.next()).await? else { break };
                let message = message?;
                let info = message.info()?;
                let (pending, revision) = (info.pending, info.stream_sequence);
                let deleted = message
                    .headers
                    .as_ref()
                    .and_then(|h| h.get("KV-Operation"))
                    .is_some_and(|op| matches!(op.as_str(), "DEL" | "PURGE"));
                if !deleted {
                    let key = message.subject.strip_prefix(prefix.as_str()).unwrap_or_default().to_owned();
                    out.push(Scanned { key, value: message.payload.clone(), revision });
                }
                if pending == 0 || revision >= last || out.len() >= MAX_SCANNED {
                    break;
                }
            }
            Ok(out)
        };
        self.run_for(self.timing.command * SCAN_TIMEOUTS, scan).await
    }
}
