//! The per-body pipeline: cheapest checks first, the replay store before the RSA unwrap.

use std::ops::ControlFlow;

use rayon::prelude::*;
use serde_json::Value;
use serde_json::value::RawValue;
use subtle::ConstantTimeEq;

use super::body::parse_collection;
use super::coverage::Verdicts;
use super::offloaded::{ADDITIONAL_PAYLOAD, has_offloaded, offloaded_id};
use super::outcome::rejected;
use super::{
    DecryptedItem, Item, LifecycleNotice, OffloadedItem, Outcome, Receiver, ValidationMessage,
};
use crate::decrypt::{Decrypted, Prepared, encrypted_content};
use crate::error::{Error, Result};
use crate::model::ChangeNotification;
use crate::replay::Fingerprint;

/// Which front door a body came through.
#[derive(Clone, Copy)]
pub(super) enum Transport {
    /// A webhook POST: tokens required (unless skipped for offline use).
    Webhook,
    /// A webhook POST accepted at this time and kept durably since: its tokens' lifetimes are
    /// judged as of then.
    WebhookAcceptedAt(std::time::SystemTime),
    /// An authenticated transport (Event Hubs, the ingress topic): no tokens.
    Trusted,
}

/// A body's items, sorted by [`Receiver::sort_items`].
pub(super) struct Sorted {
    /// One per item: decided, or `None` for an encrypted item in `pending`.
    pub(super) outcomes: Vec<Option<Outcome>>,
    pub(super) pending: Vec<(usize, ChangeNotification)>,
    pub(super) tokens: Option<Value>,
}

/// What the slices of one body share: its tokens, judged once when first needed, and what the
/// offloaded payloads may still take of the receiver's budget.
struct BodyState {
    tokens: Option<Value>,
    verdicts: Option<Option<Verdicts>>,
    payload_left: usize,
}

/// One item after its first look (`Receiver::sort_values`).
#[allow(clippy::large_enum_variant)] // short-lived, one per item; boxing would allocate per item
pub(super) enum SortedItem {
    /// Decided without a private-key operation.
    Decided(Outcome),
    /// Encrypted: left to verify and decrypt.
    Encrypted(ChangeNotification),
}

/// From how many items a body's per-item stages run in parallel (when the receiver is
/// `parallel`): below it, handing items to other threads costs more than it saves.
const PARALLEL_FROM: usize = 16;

/// A serde_json error's message without its " at line L column C": the position is inside
/// the item, not the body, and would mislead.
fn without_position(error: &serde_json::Error) -> String {
    let text = error.to_string();
    match (error.line(), text.rfind(" at line ")) {
        (line, Some(at)) if line > 0 => text[..at].to_owned(),
        _ => text,
    }
}

/// The prefix of `changeType` in Event Hubs' validation message.
pub(super) const EVENT_HUBS_VALIDATION: &str =
    "Validation: Testing client application reachability";

/// `Some(request id)` when `n` is Event Hubs' validation message: `subscriptionId` `"NA"`, the
/// documented `changeType` text, and nothing that could carry data or an event.
pub(super) fn event_hubs_validation(n: &ChangeNotification) -> Option<Option<String>> {
    let change = n.change_type.as_ref()?.as_str();
    if n.subscription_id.as_deref() != Some("NA")
        || !change.starts_with(EVENT_HUBS_VALIDATION)
        || n.encrypted_content.is_some()
        || n.lifecycle_event.is_some()
        || n.extra.contains_key(ADDITIONAL_PAYLOAD)
    {
        return None;
    }
    Some(
        change
            .split_once("Request-Id:")
            .map(|(_, id)| id.trim().to_owned())
            .filter(|id| !id.is_empty()),
    )
}

/// An encrypted item that passed every cheap check, waiting for its private-key operation.
pub(super) struct Ready<'a> {
    pub(super) index: usize,
    pub(super) prepared: Prepared<'a>,
    pub(super) notification: ChangeNotification,
    /// Recorded in the replay store; removed again if the item fails.
    pub(super) fingerprint: Option<Fingerprint>,
}

impl Receiver {
    /// Parses a body and sorts its items: the outcomes decided without a private-key operation,
    /// and the encrypted items left to verify and decrypt. Also returns the body's tokens.
    pub(super) fn sort_items(&self, body: &[u8], transport: Transport) -> Result<Sorted> {
        let (values, tokens) = self.parse_body(body)?;
        let (outcomes, pending) = self.sort_values(&values, 0, transport);
        Ok(Sorted {
            outcomes,
            pending,
            tokens,
        })
    }

    /// The size limit, then the bounded parse: the body's items as raw JSON, and its tokens.
    fn parse_body<'a>(&self, body: &'a [u8]) -> Result<(Vec<&'a RawValue>, Option<Value>)> {
        if body.len() > self.max_body_bytes {
            return Err(Error::BodyTooLarge {
                size: body.len(),
                limit: self.max_body_bytes,
            });
        }
        let raw = parse_collection(body, self.max_items, self.max_tokens)?;
        let Some(values) = raw.value else {
            return Err(crate::model::BodyShape::not_a_collection(body, None));
        };
        Ok((values, raw.validation_tokens))
    }

    /// Items typed and sorted, each on its own (in parallel for many, so that a collection of
    /// thousands of items has no serial stage before its RSA operations). `first` is the body
    /// index of `values[0]`; the pending items carry their index in `values`.
    fn sort_values(
        &self,
        values: &[&RawValue],
        first: usize,
        transport: Transport,
    ) -> (Vec<Option<Outcome>>, Vec<(usize, ChangeNotification)>) {
        let sort =
            |(index, raw): (usize, &&RawValue)| self.sort_item(first + index, raw, transport);
        let sorted: Vec<SortedItem> = if self.parallel && values.len() >= PARALLEL_FROM {
            values.par_iter().enumerate().map(sort).collect()
        } else {
            values.iter().enumerate().map(sort).collect()
        };
        let mut outcomes: Vec<Option<Outcome>> = Vec::with_capacity(sorted.len());
        let mut pending: Vec<(usize, ChangeNotification)> = Vec::new();
        for (index, item) in sorted.into_iter().enumerate() {
            match item {
                SortedItem::Decided(outcome) => outcomes.push(Some(outcome)),
                SortedItem::Encrypted(encrypted) => {
                    outcomes.push(None);
                    pending.push((index, encrypted));
                }
            }
        }
        (outcomes, pending)
    }

    /// One item typed and sorted: its outcome when decided without a private-key operation, or
    /// the encrypted notification left to verify and decrypt. `index` is its place in the body.
    fn sort_item(&self, index: usize, raw: &RawValue, transport: Transport) -> SortedItem {
        let mut de = serde_json::Deserializer::from_str(raw.get());
        let notification = match serde_path_to_error::deserialize::<_, ChangeNotification>(&mut de)
        {
            Ok(n) => n,
            Err(e) => {
                // The field's path inside the item (`encryptedContent.data`), as the later
                // checks name theirs; the item itself when it is not an object.
                let field = match e.path().to_string() {
                    root if root == "." => format!("value[{index}]"),
                    path => path,
                };
                let error = e.into_inner();
                return SortedItem::Decided(rejected(
                    Error::malformed(field, without_position(&error)),
                    None,
                ));
            }
        };
        SortedItem::Decided(match self.sort_typed(notification, transport) {
            Ok(outcome) => outcome,
            Err(encrypted) => return SortedItem::Encrypted(encrypted),
        })
    }

    /// A typed item's outcome when decided without a private-key operation; `Err` with the
    /// encrypted item otherwise.
    #[allow(clippy::result_large_err)] // Err is the common case, not an error: moved, not boxed
    fn sort_typed(
        &self,
        notification: ChangeNotification,
        transport: Transport,
    ) -> std::result::Result<Outcome, ChangeNotification> {
        // Only on the hub's own transport (Graph sends it nowhere else): there it comes
        // before clientState, since the message carries `"NA"` there. On the webhook it is an
        // ordinary item, checked like any other: recognised there, it would let anyone
        // without the clientState have items accepted (and, under `serve --forward`,
        // written to the topic).
        if let Transport::Trusted = transport
            && let Some(request_id) = event_hubs_validation(&notification)
        {
            return Ok(Outcome::Validation(Box::new(ValidationMessage {
                request_id,
                notification,
            })));
        }
        if !self.client_state_ok(notification.client_state.as_deref()) {
            return Ok(rejected(Error::ClientState, Some(notification)));
        }
        if let Some(event) = notification.lifecycle_event.clone() {
            return Ok(Outcome::Lifecycle(Box::new(LifecycleNotice {
                event,
                subscription_id: notification.subscription_id.clone(),
                tenant_id: notification.tenant_id.clone(),
                subscription_expiration_date_time: notification
                    .subscription_expiration_date_time
                    .clone(),
                notification,
            })));
        }
        if notification.encrypted_content.is_none() {
            return Ok(match offloaded_id(&notification) {
                Ok(Some(storage_id)) => Outcome::Offloaded(Box::new(OffloadedItem {
                    storage_id,
                    notification,
                })),
                Ok(None) => Outcome::Basic(Box::new(notification)),
                Err(e) => rejected(e, Some(notification)),
            });
        }
        Err(notification)
    }

    pub(super) fn receive_as(&self, body: &[u8], transport: Transport) -> Result<Vec<Item>> {
        let mut items = Vec::new();
        self.receive_slices_as(body, transport, usize::MAX, |slice| {
            items = slice; // one slice: the whole body
            ControlFlow::Continue(())
        })?;
        Ok(items)
    }

    /// A body's items decided in slices of at most `slice` items, in order, each handed to `each`
    /// when decided (until it says stop). The tokens are judged once, for the first slice that
    /// needs them; the offloaded payloads share one budget across slices.
    pub(super) fn receive_slices_as(
        &self,
        body: &[u8],
        transport: Transport,
        slice: usize,
        mut each: impl FnMut(Vec<Item>) -> ControlFlow<()>,
    ) -> Result<()> {
        let (values, tokens) = self.parse_body(body)?;
        let slice = slice.max(1);
        let mut body_state = BodyState {
            tokens,
            verdicts: None,
            payload_left: self.max_payload_bytes,
        };
        for (n, values) in values.chunks(slice).enumerate() {
            let items = self.decide_slice(values, n * slice, transport, &mut body_state);
            if each(items).is_break() {
                break;
            }
        }
        Ok(())
    }

    /// One slice of a body's items, decided: `first` is the body index of `values[0]`.
    fn decide_slice(
        &self,
        values: &[&RawValue],
        first: usize,
        transport: Transport,
        body: &mut BodyState,
    ) -> Vec<Item> {
        let (mut outcomes, mut pending) = self.sort_values(values, first, transport);
        let verdicts = if !pending.is_empty() || has_offloaded(&outcomes) {
            let tokens = body.tokens.as_ref();
            body.verdicts
                .get_or_insert_with(|| match transport {
                    Transport::Webhook => self.webhook_verdicts(tokens, None),
                    Transport::WebhookAcceptedAt(at) => self.webhook_verdicts(tokens, Some(at)),
                    Transport::Trusted => None,
                })
                .as_ref()
        } else {
            None
        };
        self.check_offloaded(&mut outcomes, verdicts);
        let fetched = match (transport, &self.payload_store) {
            (Transport::Trusted, Some(store)) => self.fetch_offloaded(
                store.as_ref(),
                &mut outcomes,
                &mut pending,
                &mut body.payload_left,
            ),
            _ => Vec::new(),
        };
        if !pending.is_empty() {
            self.decide_pending(pending, verdicts, &mut outcomes);
        }
        for (index, storage_id) in fetched {
            // The notification as the record sent it (no encryptedContent: its copy from the
            // blob, as large as the payload, is not kept once the item is decided).
            match &mut outcomes[index] {
                Some(Outcome::Decrypted(d)) => {
                    d.notification.encrypted_content = None;
                    d.storage_id = Some(storage_id);
                }
                Some(Outcome::Rejected(r)) => {
                    if let Some(n) = &mut r.notification {
                        n.encrypted_content = None;
                    }
                }
                _ => {}
            }
        }
        outcomes
            .into_iter()
            .enumerate()
            .map(|(index, outcome)| Item {
                index: first + index,
                outcome: outcome.unwrap_or_else(|| {
                    rejected(Error::malformed("value", "item was not processed"), None)
                }),
            })
            .collect()
    }

    /// The encrypted items of a slice (indices into `outcomes`): every check short of RSA, in
    /// parallel for many; then, in the items' order, each recorded in the replay store (so that
    /// of two copies in one body the first is decrypted and the second is the duplicate); then
    /// the private-key operations, in parallel.
    fn decide_pending(
        &self,
        pending: Vec<(usize, ChangeNotification)>,
        verdicts: Option<&Verdicts>,
        outcomes: &mut [Option<Outcome>],
    ) {
        let check = |(index, notification): (usize, ChangeNotification)| {
            let checked = self
                .covered(verdicts, &notification)
                .and_then(|()| self.decryptor.prepare(encrypted_content(&notification)?));
            (index, notification, checked)
        };
        let checked: Vec<_> = if self.parallel && pending.len() >= PARALLEL_FROM {
            pending.into_par_iter().map(check).collect()
        } else {
            pending.into_iter().map(check).collect()
        };
        let mut ready: Vec<Ready<'_>> = Vec::with_capacity(checked.len());
        for (index, notification, checked) in checked {
            let remembered = checked.and_then(|prepared| {
                let fingerprint = self.remember(&notification, prepared.key_tag())?;
                Ok((prepared, fingerprint))
            });
            match remembered {
                Ok((prepared, fingerprint)) => ready.push(Ready {
                    index,
                    prepared,
                    notification,
                    fingerprint,
                }),
                Err(e) => outcomes[index] = Some(rejected(e, Some(notification))),
            }
        }
        let finish = |ready: Ready<'_>| (ready.index, self.finish(ready));
        let done: Vec<(usize, Outcome)> = if self.parallel && ready.len() > 1 {
            ready.into_par_iter().map(finish).collect()
        } else {
            ready.into_iter().map(finish).collect()
        };
        for (index, outcome) in done {
            outcomes[index] = Some(outcome);
        }
    }

    pub(super) fn finish(&self, ready: Ready<'_>) -> Outcome {
        let Ready {
            prepared,
            notification,
            fingerprint,
            ..
        } = ready;
        let Decrypted {
            resource,
            plaintext,
        } = match prepared.finish_typed(notification.resource.as_deref()) {
            Ok(d) => d,
            Err(e) => {
                // Forget what failed: a forged or broken copy must not stand in for the genuine
                // item (it cannot share its fingerprint unless byte-identical, but it must not
                // occupy the memory either).
                if let (Some(store), Some(fp)) = (&self.replay, fingerprint) {
                    store.remove(&fp);
                }
                return rejected(e, Some(notification));
            }
        };
        Outcome::Decrypted(Box::new(DecryptedItem {
            notification,
            resource,
            plaintext,
            storage_id: None,
        }))
    }

    /// Records the item in the replay store before any private-key operation: a duplicate is
    /// never decrypted twice, even when two copies are processed at the same moment. The
    /// fingerprint binds the key chosen (`key_tag`): during rotation a copy rewritten to choose
    /// another key is another item, fails its unwrap and is forgotten, and cannot make the
    /// genuine copy a duplicate; a copy choosing the same key by other spellings is a duplicate.
    pub(super) fn remember(
        &self,
        notification: &ChangeNotification,
        key_tag: &[u8; 32],
    ) -> Result<Option<Fingerprint>> {
        let (Some(store), Some(content)) = (&self.replay, notification.encrypted_content.as_ref())
        else {
            return Ok(None);
        };
        let fp = Fingerprint::of_content_for_key(content, key_tag);
        if store.insert_if_absent(&fp)? {
            Ok(Some(fp))
        } else {
            Err(Error::Duplicate)
        }
    }

    pub(super) fn client_state_ok(&self, sent: Option<&str>) -> bool {
        if self.client_states.is_empty() {
            return true;
        }
        let sent = sent.unwrap_or("").as_bytes();
        // Compare against every secret, without stopping early.
        let mut ok = subtle::Choice::from(0u8);
        for secret in &self.client_states {
            ok |= secret.as_slice().ct_eq(sent);
        }
        bool::from(ok) && !sent.is_empty()
    }
}
