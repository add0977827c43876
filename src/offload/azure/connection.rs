//! Connection strings, as Azure's own SDKs read them.

use std::collections::HashMap;

use zeroize::Zeroizing;

use super::super::PayloadError;
use super::*;

pub(super) fn config(reason: String) -> PayloadError {
    PayloadError::Config(reason)
}

/// A connection string's parts.
pub(super) struct Parsed {
    pub(super) account: String,
    pub(super) endpoint: String,
    pub(super) credential: Credential,
}

impl Parsed {
    pub(super) fn new(connection_string: &str) -> Result<Self, PayloadError> {
        let mut parts: HashMap<String, Zeroizing<String>> = HashMap::new();
        for part in connection_string.split(';') {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let Some((key, value)) = part.split_once('=') else {
                return Err(config(
                    "a part is not KEY=VALUE (the string is `Key=Value;Key=Value`)".into(),
                ));
            };
            parts.insert(
                key.trim().to_ascii_lowercase(),
                Zeroizing::new(value.trim().to_owned()),
            );
        }
        let get = |key: &str| parts.get(key).map(|v| v.as_str()).filter(|v| !v.is_empty());
        if get("usedevelopmentstorage").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return Ok(Parsed {
                account: EMULATOR_ACCOUNT.to_owned(),
                endpoint: format!("http://127.0.0.1:10000/{EMULATOR_ACCOUNT}"),
                credential: Credential::AccountKey(Zeroizing::new(EMULATOR_KEY.to_owned())),
            });
        }
        let endpoint = match (get("blobendpoint"), get("accountname")) {
            (Some(endpoint), _) => endpoint.trim_end_matches('/').to_owned(),
            (None, Some(account)) => {
                let protocol = get("defaultendpointsprotocol").unwrap_or("https");
                let suffix = get("endpointsuffix").unwrap_or("core.windows.net");
                format!("{protocol}://{account}.blob.{suffix}")
            }
            (None, None) => return Err(config("AccountName is missing".into())),
        };
        let url = match url::Url::parse(&endpoint) {
            Ok(u)
                if matches!(u.scheme(), "http" | "https")
                    && u.host().is_some()
                    && u.username().is_empty()
                    && u.password().is_none()
                    && u.query().is_none()
                    && u.fragment().is_none() =>
            {
                u
            }
            // Not echoed: a pasted SAS or a user:password would be in it.
            _ => {
                return Err(config(
                    "BlobEndpoint is not an http(s) URL of the blob service alone (no user \
                     information, query or fragment: a SAS goes in SharedAccessSignature)"
                        .into(),
                ));
            }
        };
        // A SAS connection string names no AccountName (nor needs one: the SAS signs, and the
        // endpoint is given): the endpoint's host names it (`ACCOUNT.blob.core.windows.net`,
        // `ACCOUNT.privatelink.blob…`) or, path-style (Azurite), its first segment. Shared Key
        // signs with the account's name: that needs AccountName.
        let account = match (get("accountname"), get("accountkey")) {
            (Some(account), _) => account.to_owned(),
            (None, Some(_)) => return Err(config("AccountName is missing".into())),
            (None, None) => url
                .host_str()
                .filter(|host| host.contains(".blob."))
                .and_then(|host| host.split('.').next())
                .map(str::to_owned)
                .or_else(|| {
                    url.path_segments()
                        .and_then(|mut segments| segments.next())
                        .filter(|segment| !segment.is_empty())
                        .map(str::to_owned)
                })
                .ok_or_else(|| {
                    config(
                        "AccountName is missing and BlobEndpoint does not name the account".into(),
                    )
                })?,
        };
        let credential = match (get("accountkey"), get("sharedaccesssignature")) {
            (Some(key), _) => Credential::AccountKey(Zeroizing::new(key.to_owned())),
            (None, Some(sas)) => Credential::Sas(Zeroizing::new(sas.to_owned())),
            (None, None) => {
                return Err(config(
                    "neither AccountKey nor SharedAccessSignature is given".into(),
                ));
            }
        };
        Ok(Parsed {
            account,
            endpoint,
            credential,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_come_from_the_connection_string_as_azure_reads_it() {
        let p = Parsed::new("AccountName=a;AccountKey=k").unwrap();
        assert_eq!(p.endpoint, "https://a.blob.core.windows.net");
        let p = Parsed::new(
            "DefaultEndpointsProtocol=http;AccountName=a;AccountKey=k;EndpointSuffix=core.chinacloudapi.cn;",
        )
        .unwrap();
        assert_eq!(p.endpoint, "http://a.blob.core.chinacloudapi.cn");
        let p = Parsed::new(
            "accountname=devstoreaccount1;accountkey=k;blobendpoint=http://127.0.0.1:10000/devstoreaccount1/",
        )
        .unwrap();
        assert_eq!(p.endpoint, "http://127.0.0.1:10000/devstoreaccount1");
        let p = Parsed::new(
            "BlobEndpoint=https://contoso.blob.core.windows.net/;SharedAccessSignature=sv=2022&sig=x",
        )
        .unwrap();
        assert_eq!(p.account, "contoso");
        let p = Parsed::new(
            "BlobEndpoint=https://contoso.privatelink.blob.core.windows.net;SharedAccessSignature=sig=x",
        )
        .unwrap();
        assert_eq!(p.account, "contoso");
        let p = Parsed::new(
            "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;SharedAccessSignature=sig=x",
        )
        .unwrap();
        assert_eq!(p.account, "devstoreaccount1");
        let p = Parsed::new("UseDevelopmentStorage=true").unwrap();
        assert_eq!(p.account, "devstoreaccount1");
        assert!(matches!(
            Parsed::new("AccountName=a;SharedAccessSignature=sv=2022&sig=x")
                .unwrap()
                .credential,
            Credential::Sas(_)
        ));
    }

    #[test]
    fn unusable_connection_strings_are_refused_without_echoing_the_key() {
        for bad in [
            "",
            "AccountKey=topsecret",
            "AccountName=a",
            "AccountName=a;AccountKey=topsecret;BlobEndpoint=ftp://x",
            "AccountName=a;AccountKey=k;BlobEndpoint=https://a.blob.core.windows.net/?sig=topsecret",
            "AccountName=a;AccountKey=k;BlobEndpoint=https://u:topsecret@a.blob.core.windows.net",
            "AccountName=a;AccountKey=topsecret;garbage",
            "AccountKey=topsecret;BlobEndpoint=https://a.blob.core.windows.net",
        ] {
            let e = Parsed::new(bad).err().expect(bad);
            assert!(!e.to_string().contains("topsecret"), "{e}");
            assert!(matches!(e, PayloadError::Config(_)), "{e:?}");
        }
    }
}
