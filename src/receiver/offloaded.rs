//! Offloaded payloads: items whose encrypted content Graph kept in blob storage.

use serde_json::Value;

use super::coverage::Verdicts;
use super::outcome::rejected;
use super::{OffloadedItem, Outcome, Receiver};
use crate::error::{Error, Result};
use crate::model::ChangeNotification;
use crate::offload::{PayloadStore, check_blob_name, merge_payload};

/// The member naming an offloaded payload's blob.
pub(super) const ADDITIONAL_PAYLOAD: &str = "additionalPayloadStorageId";

/// `additionalPayloadStorageId`, when the item carries one (it must be a non-empty string).
pub(super) fn offloaded_id(n: &ChangeNotification) -> Result<Option<String>> {
    match n.extra.get(ADDITIONAL_PAYLOAD) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(id)) if !id.trim().is_empty() => Ok(Some(id.clone())),
        Some(_) => Err(Error::malformed(
            ADDITIONAL_PAYLOAD,
            "not a non-empty string (the name of the blob holding the payload)",
        )),
    }
}

/// Whether any outcome is an offloaded item.
pub(super) fn has_offloaded(outcomes: &[Option<Outcome>]) -> bool {
    outcomes
        .iter()
        .any(|o| matches!(o, Some(Outcome::Offloaded(_))))
}

impl Receiver {
    /// Replaces each offloaded outcome by its item with the blob's properties filled in, moved to
    /// `pending` to be verified and decrypted; or by a rejection when the blob cannot be read or
    /// used. The subscription's binding is checked before the fetch. One blob at a time, all of
    /// them within `max_payload_bytes` together (`left`: what the body's earlier items left of
    /// it). Returns the (index, blob name) of those moved.
    pub(super) fn fetch_offloaded(
        &self,
        store: &dyn PayloadStore,
        outcomes: &mut [Option<Outcome>],
        pending: &mut Vec<(usize, ChangeNotification)>,
        left: &mut usize,
    ) -> Vec<(usize, String)> {
        use crate::offload::PayloadError;
        let budget = self.max_payload_bytes;
        let mut fetched = Vec::new();
        for (index, slot) in outcomes.iter_mut().enumerate() {
            if !matches!(slot, Some(Outcome::Offloaded(_))) {
                continue;
            }
            let Some(Outcome::Offloaded(offloaded)) = slot.take() else {
                continue;
            };
            let OffloadedItem {
                storage_id,
                notification,
            } = *offloaded;
            let merged = self
                .covered(None, &notification)
                .and_then(|()| Ok(check_blob_name(&storage_id)?))
                .and_then(|()| {
                    if *left == 0 {
                        return Err(PayloadError::OverBudget { budget }.into());
                    }
                    match store.fetch(&storage_id, *left) {
                        // Over what the items before it left, or over the whole budget: the
                        // store cannot tell; the budget being whole, it is the blob.
                        Err(PayloadError::TooLarge { .. }) if *left < budget => {
                            Err(PayloadError::OverBudget { budget }.into())
                        }
                        other => Ok(other?),
                    }
                })
                .and_then(|blob| {
                    // Whatever the store did with the limit.
                    if blob.len() > budget {
                        return Err(PayloadError::TooLarge { limit: budget }.into());
                    }
                    if blob.len() > *left {
                        return Err(PayloadError::OverBudget { budget }.into());
                    }
                    *left -= blob.len();
                    merge_payload(notification.clone(), &blob)
                });
            match merged {
                Ok(merged) => {
                    pending.push((index, merged));
                    fetched.push((index, storage_id));
                }
                Err(e) => *slot = Some(rejected(e, Some(notification))),
            }
        }
        fetched
    }

    /// On the webhook, an offloaded item needs the tokens' coverage as an encrypted item does
    /// (Graph offloads only on Event Hubs, so a webhook one is suspect): otherwise rejected.
    pub(super) fn check_offloaded(
        &self,
        outcomes: &mut [Option<Outcome>],
        verdicts: Option<&Verdicts>,
    ) {
        let Some(verdicts) = verdicts else {
            return;
        };
        for slot in outcomes.iter_mut() {
            let refusal = match slot {
                Some(Outcome::Offloaded(o)) => self.covered(Some(verdicts), &o.notification).err(),
                _ => None,
            };
            if let Some(e) = refusal
                && let Some(Outcome::Offloaded(o)) = slot.take()
            {
                *slot = Some(rejected(e, Some(o.notification)));
            }
        }
    }
}
