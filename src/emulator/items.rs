//! The items of a delivery: the changed resources (given, or generated as realistic ones of the
//! resource's kind), and each one as Graph sends it (encrypted for the subscription's certificate
//! with the test kit's [`GraphEncryptor`], or basic without resource data).

use serde_json::{Value, json};

use super::Change;
use super::state::{Shared, Subscription, random_id};
use crate::model::ChangeType;
use crate::resource::PathKind;
use crate::subscription::format_date_time;
use crate::testing::{GraphEncryptor, NotificationSpec};

/// The most items one `count` may generate (chosen; bounds the memory of one trigger).
pub(crate) const MAX_GENERATED: usize = 10_000;

/// The resources of `change`: its `data`, or `count` generated ones.
pub(crate) fn resources(change: &Change) -> Result<Vec<Value>, String> {
    if change.resource.trim().is_empty() {
        return Err("resource is required (e.g. communications/presences/{id})".into());
    }
    let kind = PathKind::of(&change.resource);
    if let Some(data) = &change.data {
        if !data.is_object() {
            return Err("data must be a JSON object (the changed resource)".into());
        }
        let mut data = data.clone();
        if data.get("@odata.type").is_none() {
            data["@odata.type"] = odata_type(kind).into();
        }
        return Ok(vec![data]);
    }
    let count = change.count.unwrap_or(1);
    if count == 0 || count > MAX_GENERATED {
        return Err(format!("count must be 1 to {MAX_GENERATED}"));
    }
    Ok((0..count)
        .map(|n| generate(kind, &change.resource, n))
        .collect())
}

fn odata_type(kind: PathKind) -> String {
    match kind {
        PathKind::CallEvent => "#microsoft.graph.callEvent".into(),
        other => format!("#microsoft.graph.{}", other.as_str()),
    }
}

/// A realistic resource of `kind`, as Graph's documentation shows them.
fn generate(kind: PathKind, resource: &str, n: usize) -> Value {
    let now = format_date_time(std::time::SystemTime::now());
    let id = random_id();
    match kind {
        PathKind::Presence => {
            let user = resource.rsplit('/').next().unwrap_or("").to_owned();
            let (availability, activity) = [
                ("Available", "Available"),
                ("Busy", "InACall"),
                ("Away", "Away"),
                ("DoNotDisturb", "Presenting"),
            ][n % 4];
            json!({
                "@odata.type": "#microsoft.graph.presence",
                "@odata.id": format!("users/{user}/presence"),
                "id": user, "availability": availability, "activity": activity,
            })
        }
        PathKind::ChatMessage => json!({
            "@odata.type": "#microsoft.graph.chatMessage",
            "id": format!("{}", 1_612_289_992_105_u64 + n as u64),
            "replyToId": null, "etag": "1612289992105", "messageType": "message",
            "createdDateTime": now, "lastModifiedDateTime": now,
            "chatId": "19:8ea0e38b-efb3-4757-924a-5f94061cf8c2_97f62344-57dc-409c-88ad-c4af14158ff5@unq.gbl.spaces",
            "importance": "normal", "locale": "en-us",
            "from": {"user": {"id": random_id(), "displayName": "Emulated User", "userIdentityType": "aadUser"}},
            "body": {"contentType": "text", "content": format!("message {n}")},
            "attachments": [], "mentions": [], "reactions": [],
        }),
        PathKind::CallEvent => json!({
            "@odata.type": "#microsoft.graph.callEvent",
            "@odata.id": resource,
            "id": id, "eventType": "rosterUpdated", "eventDateTime": now,
            "participants@delta": [{
                "info": {"identity": {"user": {"id": random_id(), "displayName": "Emulated User"}}},
                "isInLobby": false, "id": random_id(),
            }],
        }),
        other => json!({"@odata.type": odata_type(other), "id": id}),
    }
}

fn change_type(name: &str) -> ChangeType {
    match name {
        "created" => ChangeType::Created,
        "deleted" => ChangeType::Deleted,
        _ => ChangeType::Updated,
    }
}

/// One item for `subscription`: encrypted when it includes resource data, basic otherwise.
pub(crate) fn notification(
    shared: &Shared,
    subscription: &Subscription,
    resource_path: &str,
    change: &str,
    resource: &Value,
) -> Result<Value, crate::Error> {
    let path = resource_path.trim_start_matches('/');
    let tenant = &shared.config.tenant;
    let mut item = match (
        &subscription.certificate,
        &subscription.encryption_certificate_id,
    ) {
        (Some(cert), Some(cert_id)) => {
            let spec = NotificationSpec {
                subscription_id: subscription.id.clone(),
                tenant_id: tenant.clone(),
                resource: path.to_owned(),
                change_type: change_type(change),
                client_state: subscription.client_state().map(str::to_owned),
            };
            let n = GraphEncryptor::new(cert, cert_id).notification(resource, &spec)?;
            serde_json::to_value(n).map_err(|e| crate::Error::malformed("item", e.to_string()))?
        }
        _ => json!({
            "subscriptionId": subscription.id,
            "changeType": change,
            "clientState": subscription.client_state(),
            "tenantId": tenant,
            "resource": path,
            "resourceData": {
                "@odata.type": resource.get("@odata.type"),
                "@odata.id": path,
                "id": resource.get("id"),
            },
        }),
    };
    item["subscriptionExpirationDateTime"] = format_date_time(subscription.expiration).into();
    item["id"] = random_id().into();
    Ok(item)
}

/// A lifecycle item for `subscription`.
pub(crate) fn lifecycle(shared: &Shared, subscription: &Subscription, event: &str) -> Value {
    json!({
        "lifecycleEvent": event,
        "subscriptionId": subscription.id,
        "subscriptionExpirationDateTime": format_date_time(subscription.expiration),
        "clientState": subscription.client_state(),
        "tenantId": shared.config.tenant,
        "organizationId": shared.config.tenant,
    })
}
