//! What a body's validation tokens prove, and whether they cover an item.

use std::collections::HashMap;

use serde_json::Value;

use super::Receiver;
use crate::error::{Error, Result};
use crate::model::ChangeNotification;
use crate::token::{TokenError, TokenValidator, ValidatedToken, id_key, ids_equal};

/// What the tokens of one body prove.
#[derive(Default)]
pub(super) struct Verdicts {
    pub(super) present: bool,
    /// `validationTokens` is `null`: Graph could not issue tokens (SPEC §9).
    pub(super) null: bool,
    /// Tenant → the apps (`aud`) of its valid tokens.
    pub(super) valid: HashMap<String, Vec<String>>,
    pub(super) failed: HashMap<String, TokenError>,
    pub(super) unattributed: Option<TokenError>,
}

impl Receiver {
    /// What a webhook body's tokens prove: `None` when token checks are skipped (offline use);
    /// nothing at all for a receiver built for trusted transports without token rules.
    /// `at`: judge the tokens' lifetimes as of the body's acceptance (a spooled body), not now.
    pub(super) fn webhook_verdicts(
        &self,
        tokens: Option<&Value>,
        at: Option<std::time::SystemTime>,
    ) -> Option<Verdicts> {
        match &self.tokens {
            Some(v) => Some(self.judge_tokens(v, tokens, at)),
            None if self.no_token_rules => Some(Verdicts::default()),
            None => None,
        }
    }

    /// Whether an encrypted item is covered: by the body's tokens (`verdicts`, webhook mode with
    /// token checks), and in any mode by the bound-subscription allow-list when it is on.
    pub(super) fn covered(
        &self,
        verdicts: Option<&Verdicts>,
        notification: &ChangeNotification,
    ) -> Result<()> {
        let app = self.required_app(notification)?;
        match verdicts {
            Some(v) => binding(v, notification.tenant_id.as_deref(), app),
            None => Ok(()),
        }
    }

    /// The app whose token must cover `notification`: `None` when any app's will do.
    pub(super) fn required_app(&self, notification: &ChangeNotification) -> Result<Option<&str>> {
        if self.subscription_apps.is_empty() {
            return Ok(None);
        }
        let sub = notification.subscription_id.as_deref().unwrap_or_default();
        match self.subscription_apps.get(&sub.to_ascii_lowercase()) {
            Some(app) => Ok(Some(app)),
            None if self.only_bound => Err(TokenError::UnboundSubscription(sub.to_owned()).into()),
            None => Ok(None),
        }
    }

    pub(super) fn judge_tokens(
        &self,
        validator: &TokenValidator,
        tokens: Option<&Value>,
        at: Option<std::time::SystemTime>,
    ) -> Verdicts {
        let tokens_value = tokens;
        let mut tokens = token_strings(tokens);
        let mut verdicts = Verdicts {
            present: !tokens.is_empty(),
            null: matches!(tokens_value, Some(Value::Null)),
            ..Verdicts::default()
        };
        // The count was bounded while parsing (`max_validation_tokens`).
        tokens.sort_unstable();
        tokens.dedup();
        let leeway = validator.validation().leeway.as_secs();
        for token in &tokens {
            let result = match at {
                // The cache judges lifetimes as of now: a body judged as of its acceptance
                // validates its tokens itself.
                Some(at) => validator.validate_at(token, at),
                None => match self.cache.get(token, leeway) {
                    Some(hit) => Ok(hit),
                    None => validator.validate(token).inspect(|valid: &ValidatedToken| {
                        self.cache.insert(token, valid.clone());
                    }),
                },
            };
            match result {
                Ok(valid) => {
                    let apps = verdicts.valid.entry(id_key(&valid.tenant_id)).or_default();
                    if !apps.contains(&valid.app_id) {
                        apps.push(valid.app_id);
                    }
                }
                // A genuine token of another app on the same URL (every check but the audience
                // passed): it covers that app's items, and says nothing against this tenant.
                Err(TokenError::Audience(_)) => {}
                Err(e) => match TokenValidator::peek_tenant(token) {
                    Some(tid) => {
                        verdicts.failed.entry(id_key(&tid)).or_insert(e);
                    }
                    None => {
                        verdicts.unattributed.get_or_insert(e);
                    }
                },
            }
        }
        verdicts
    }
}

/// The tokens of `validationTokens` as strings (a non-string entry counts as garbage).
pub(super) fn token_strings(tokens: Option<&Value>) -> Vec<String> {
    match tokens {
        Some(Value::Array(list)) => list
            .iter()
            .map(|t| t.as_str().map_or_else(|| t.to_string(), str::to_owned))
            .collect(),
        Some(Value::Null) | None => Vec::new(),
        Some(other) => vec![other.to_string()],
    }
}

/// Whether the body's tokens cover an encrypted item of `tenant` (and of `app`, when its
/// subscription is bound to one).
pub(super) fn binding(verdicts: &Verdicts, tenant: Option<&str>, app: Option<&str>) -> Result<()> {
    if !verdicts.present && verdicts.null {
        return Err(TokenError::Null.into());
    }
    if !verdicts.present {
        return Err(TokenError::Missing.into());
    }
    let tenant = tenant.filter(|t| !t.is_empty()).ok_or_else(|| {
        Error::malformed(
            "tenantId",
            "missing: an item with encrypted content needs its tenant to bind a validation token",
        )
    })?;
    if let Some(e) = &verdicts.unattributed {
        return Err(e.clone().into());
    }
    // Tenant ids are GUIDs, which Microsoft writes in either case.
    let key = id_key(tenant);
    if let Some(e) = verdicts.failed.get(&key) {
        return Err(e.clone().into());
    }
    let Some(apps) = verdicts.valid.get(&key) else {
        return Err(TokenError::NotCovered(tenant.to_owned()).into());
    };
    if let Some(app) = app
        && !apps.iter().any(|a| ids_equal(a, app))
    {
        return Err(TokenError::AppNotCovered {
            app_id: app.to_owned(),
            tenant_id: tenant.to_owned(),
        }
        .into());
    }
    Ok(())
}
