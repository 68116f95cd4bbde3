//! The emulated operations: each takes a validated request body and the world, and returns
//! the response body or the modeled error, as the WorkMail API reference describes them.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::faults::OpFaults;
use super::sigv4;
use super::world::{Org, Token, User, World};

/// The operations the emulator implements; every other target answers
/// `UnknownOperationException`.
pub const OPERATIONS: &[&str] = &[
    "ListOrganizations",
    "DescribeOrganization",
    "ListUsers",
    "DescribeUser",
    "ListPersonalAccessTokens",
    "GetPersonalAccessTokenMetadata",
    "DeletePersonalAccessToken",
    "DescribeIdentityProviderConfiguration",
];

/// Page size when a request sends no `MaxResults`.
const DEFAULT_PAGE: usize = 100;

/// An error answer: HTTP status, AWS error code and message.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorAnswer {
    /// HTTP status.
    pub status: u16,
    /// The `__type` and `x-amzn-errortype`.
    pub code: &'static str,
    /// The `Message`.
    pub message: String,
}

impl ErrorAnswer {
    /// A 400 error with the given code.
    pub fn client(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status: 400,
            code,
            message: message.into(),
        }
    }

    fn invalid(message: impl Into<String>) -> Self {
        Self::client("InvalidParameterException", message)
    }
}

/// What an operation needs besides the world.
pub struct Ctx<'a> {
    /// The emulator's region.
    pub region: &'a str,
    /// The key that signs pagination tokens.
    pub page_key: &'a [u8],
    /// The faults in force for this operation.
    pub faults: &'a OpFaults,
    /// The emulator's clock, for deletion records.
    pub now: DateTime<Utc>,
    /// The caller's AWS account: the only one whose organizations it sees.
    pub account: &'a str,
}

/// A token the emulator deleted.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Deleted {
    /// Organization id.
    pub organization_id: String,
    /// Token id.
    pub token_id: String,
    /// Owner's user id.
    pub user_id: String,
    /// When (emulator clock).
    pub at: DateTime<Utc>,
}

/// Runs one operation.
pub fn handle(
    world: &mut World,
    op: &str,
    req: &Value,
    ctx: &Ctx<'_>,
    deleted: &mut Vec<Deleted>,
) -> Result<Value, ErrorAnswer> {
    match op {
        "ListOrganizations" => list_organizations(world, req, ctx),
        "DescribeOrganization" => {
            let org = find_org(world, req, ctx)?;
            Ok(describe_organization(org, ctx.region))
        }
        "ListUsers" => list_users(active_org(world, req, ctx)?, req, ctx),
        "DescribeUser" => {
            let org = active_org(world, req, ctx)?;
            let key = str_of(req, "UserId");
            let user = org.find_user(key).ok_or_else(|| user_not_found(key))?;
            Ok(describe_user(user))
        }
        "ListPersonalAccessTokens" => list_tokens(active_org(world, req, ctx)?, req, ctx),
        "GetPersonalAccessTokenMetadata" => {
            let org = active_org(world, req, ctx)?;
            let id = str_of(req, "PersonalAccessTokenId");
            let token = org.tokens.get(id).ok_or_else(|| {
                ErrorAnswer::client(
                    "ResourceNotFoundException",
                    format!("Personal access token {id} not found."),
                )
            })?;
            Ok(token_json(token))
        }
        "DeletePersonalAccessToken" => {
            active_org(world, req, ctx)?;
            let org_id = str_of(req, "OrganizationId").to_owned();
            let id = str_of(req, "PersonalAccessTokenId");
            // The operation is idempotent: deleting a token that is gone succeeds.
            if let Some(org) = world.orgs.get_mut(&org_id)
                && let Some(token) = org.tokens.remove(id)
            {
                deleted.push(Deleted {
                    organization_id: org_id,
                    token_id: token.id,
                    user_id: token.user_id,
                    at: ctx.now,
                });
            }
            Ok(json!({}))
        }
        "DescribeIdentityProviderConfiguration" => {
            let org = active_org(world, req, ctx)?;
            let idp = org.identity_provider.as_ref().ok_or_else(|| {
                ErrorAnswer::client(
                    "ResourceNotFoundException",
                    "The identity provider configuration does not exist for this organization.",
                )
            })?;
            let mut pat = Map::new();
            pat.insert("Status".into(), json!(idp.pat_status));
            if let Some(days) = idp.pat_lifetime_days {
                pat.insert("LifetimeInDays".into(), json!(days));
            }
            let suffix = &org.id[2..18];
            Ok(json!({
                "AuthenticationMode": idp.authentication_mode,
                "IdentityCenterConfiguration": {
                    "InstanceArn": format!("arn:aws:sso:::instance/ssoins-{suffix}"),
                    "ApplicationArn": format!(
                        "arn:aws:sso::{}:application/ssoins-{suffix}/apl-{suffix}",
                        org.account_id
                    ),
                },
                "PersonalAccessTokenConfiguration": pat,
            }))
        }
        _ => Err(ErrorAnswer::client(
            "UnknownOperationException",
            format!("Unknown operation {op}"),
        )),
    }
}

fn str_of<'a>(req: &'a Value, key: &str) -> &'a str {
    req[key].as_str().unwrap_or_default()
}

/// The request's organization, if it exists in the caller's account: another account's
/// organization is answered as a missing one, as the real service does.
fn find_org<'a>(world: &'a World, req: &Value, ctx: &Ctx<'_>) -> Result<&'a Org, ErrorAnswer> {
    let id = str_of(req, "OrganizationId");
    let visible = world.orgs.get(id).filter(|o| o.account_id == ctx.account);
    visible.ok_or_else(|| {
        ErrorAnswer::client(
            "OrganizationNotFoundException",
            format!("Organization {id} does not exist."),
        )
    })
}

fn active_org<'a>(world: &'a World, req: &Value, ctx: &Ctx<'_>) -> Result<&'a Org, ErrorAnswer> {
    let org = find_org(world, req, ctx)?;
    if org.state != "Active" {
        return Err(ErrorAnswer::client(
            "OrganizationStateException",
            format!(
                "Organization {} is in state {}, not Active.",
                org.id, org.state
            ),
        ));
    }
    Ok(org)
}

fn user_not_found(key: &str) -> ErrorAnswer {
    ErrorAnswer::client(
        "EntityNotFoundException",
        format!("Entity {key} does not exist."),
    )
}

/// A JSON timestamp: epoch seconds, with a fraction only when there is one.
pub fn ts(t: DateTime<Utc>) -> Value {
    let ms = t.timestamp_millis();
    if ms % 1000 == 0 {
        json!(ms / 1000)
    } else {
        json!(ms as f64 / 1000.0)
    }
}

fn put(map: &mut Map<String, Value>, key: &str, value: Option<Value>) {
    if let Some(v) = value {
        map.insert(key.to_owned(), v);
    }
}

fn describe_organization(org: &Org, region: &str) -> Value {
    json!({
        "OrganizationId": org.id,
        "Alias": org.alias,
        "State": org.state,
        "DirectoryId": format!("d-{}", &org.id[2..12]),
        "DirectoryType": "WorkMailDirectory",
        "DefaultMailDomain": org.default_mail_domain,
        "CompletedDate": ts(org.completed),
        "ARN": org.arn(region),
        "InteroperabilityEnabled": false,
    })
}

fn user_fields(user: &User, id_key: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert(id_key.into(), json!(user.id));
    m.insert("Name".into(), json!(user.name));
    put(&mut m, "Email", user.email.as_ref().map(|e| json!(e)));
    put(
        &mut m,
        "DisplayName",
        user.display_name.as_ref().map(|d| json!(d)),
    );
    m.insert("State".into(), json!(user.state));
    m.insert("UserRole".into(), json!("USER"));
    put(&mut m, "EnabledDate", user.enabled_date.map(ts));
    put(&mut m, "DisabledDate", user.disabled_date.map(ts));
    if let Some(idp) = &user.identity_provider_user_id {
        m.insert("IdentityProviderUserId".into(), json!(idp));
        m.insert(
            "IdentityProviderIdentityStoreId".into(),
            json!("d-9067230fba"),
        );
    }
    m
}

fn describe_user(user: &User) -> Value {
    Value::Object(user_fields(user, "UserId"))
}

fn token_json(t: &Token) -> Value {
    let mut m = Map::new();
    m.insert("PersonalAccessTokenId".into(), json!(t.id));
    m.insert("UserId".into(), json!(t.user_id));
    m.insert("Name".into(), json!(t.name));
    m.insert("DateCreated".into(), ts(t.created));
    put(&mut m, "DateLastUsed", t.last_used.map(ts));
    m.insert("ExpiresTime".into(), ts(t.expires));
    m.insert("Scopes".into(), json!(t.scopes));
    Value::Object(m)
}

fn list_organizations(world: &World, req: &Value, ctx: &Ctx<'_>) -> Result<Value, ErrorAnswer> {
    let items = world
        .orgs
        .values()
        .filter(|o| o.account_id == ctx.account)
        .map(|o| (o.id.as_str(), o));
    // The cursor is bound to the account, so one account's token cannot page another's.
    let (page, next) = paginate(items, req, "ListOrganizations", ctx.account, ctx)?;
    let summaries: Vec<Value> = page
        .into_iter()
        .map(|o| {
            json!({
                "OrganizationId": o.id,
                "Alias": o.alias,
                "DefaultMailDomain": o.default_mail_domain,
                "State": o.state,
            })
        })
        .collect();
    Ok(with_next(
        json!({ "OrganizationSummaries": summaries }),
        next,
    ))
}

fn list_users(org: &Org, req: &Value, ctx: &Ctx<'_>) -> Result<Value, ErrorAnswer> {
    let filters = &req["Filters"];
    let used = filters
        .as_object()
        .map_or(0, |f| f.values().filter(|v| !v.is_null()).count());
    if used > 1 {
        return Err(ErrorAnswer::invalid(
            "You can only use one filter per request.",
        ));
    }
    let prefix = |key: &str, value: Option<&str>| {
        filters[key]
            .as_str()
            .is_none_or(|p| value.is_some_and(|v| v.starts_with(p)))
    };
    let items = org
        .users
        .values()
        .filter(|u| {
            prefix("UsernamePrefix", Some(&u.name))
                && prefix("DisplayNamePrefix", u.display_name.as_deref())
                && prefix("PrimaryEmailPrefix", u.email.as_deref())
                && prefix(
                    "IdentityProviderUserIdPrefix",
                    u.identity_provider_user_id.as_deref(),
                )
                && filters["State"].as_str().is_none_or(|s| s == u.state)
        })
        .map(|u| (u.id.as_str(), u));
    let scope = format!("{}\u{1f}{}", org.id, filters);
    let (page, next) = paginate(items, req, "ListUsers", &scope, ctx)?;
    let users: Vec<Value> = page
        .into_iter()
        .map(|u| Value::Object(user_fields(u, "Id")))
        .collect();
    Ok(with_next(json!({ "Users": users }), next))
}

fn list_tokens(org: &Org, req: &Value, ctx: &Ctx<'_>) -> Result<Value, ErrorAnswer> {
    let user_id = match req["UserId"].as_str() {
        Some(key) => {
            let user = org.find_user(key).ok_or_else(|| user_not_found(key))?;
            Some(user.id.as_str())
        }
        None => None,
    };
    let items = org
        .tokens
        .values()
        .filter(|t| user_id.is_none_or(|u| t.user_id == u))
        .map(|t| (t.id.as_str(), t));
    let scope = format!("{}\u{1f}{}", org.id, user_id.unwrap_or_default());
    let (page, next) = paginate(items, req, "ListPersonalAccessTokens", &scope, ctx)?;
    let summaries: Vec<Value> = page.into_iter().map(token_json).collect();
    Ok(with_next(
        json!({ "PersonalAccessTokenSummaries": summaries }),
        next,
    ))
}

fn with_next(mut body: Value, next: Option<String>) -> Value {
    if let (Some(next), Some(map)) = (next, body.as_object_mut()) {
        map.insert("NextToken".into(), json!(next));
    }
    body
}

/// Where a listing stands: its page number and the last key it returned.
struct Cursor {
    page: u32,
    after: String,
}

/// One page of `items` (sorted by key) after the request's cursor.
///
/// Cursors are keyed ("after this id"), so deleting items between pages neither skips nor
/// repeats the others; they are bound to the operation and its arguments, and signed, so a
/// forged or reused token is refused.
fn paginate<'a, T>(
    items: impl Iterator<Item = (&'a str, T)>,
    req: &Value,
    op: &str,
    scope: &str,
    ctx: &Ctx<'_>,
) -> Result<(Vec<T>, Option<String>), ErrorAnswer> {
    let incoming = req["NextToken"].as_str();
    let cursor = match incoming {
        Some(token) => Some(decode_cursor(token, op, scope, ctx.page_key)?),
        None => None,
    };
    let page_no = cursor.as_ref().map_or(1, |c| c.page + 1);
    if ctx.faults.fail_pages.contains(&page_no) {
        return Err(ErrorAnswer {
            status: 500,
            code: "InternalFailure",
            message: format!("injected failure of page {page_no}"),
        });
    }
    let limit = req["MaxResults"]
        .as_u64()
        .map_or(DEFAULT_PAGE, |n| n as usize);
    let mut page = Vec::with_capacity(limit.min(DEFAULT_PAGE));
    let mut last_key = None;
    let mut more = false;
    for (key, item) in items {
        let seen = |c: &Cursor| {
            if ctx.faults.overlap_pages {
                key < c.after.as_str()
            } else {
                key <= c.after.as_str()
            }
        };
        if cursor.as_ref().is_some_and(seen) {
            continue;
        }
        if page.len() == limit {
            more = true;
            break;
        }
        last_key = Some(key);
        page.push(item);
    }
    let next = match (more, last_key) {
        (true, Some(_)) if ctx.faults.repeat_next_token && incoming.is_some() => {
            incoming.map(str::to_owned)
        }
        (true, Some(last)) => Some(encode_cursor(op, scope, page_no, last, ctx.page_key)),
        _ => None,
    };
    Ok((page, next))
}

const SEP: char = '\u{1e}';

fn encode_cursor(op: &str, scope: &str, page: u32, after: &str, key: &[u8]) -> String {
    let payload = format!("v1{SEP}{op}{SEP}{}{SEP}{page}{SEP}{after}", digest(scope));
    let mac = sigv4::mac(key, payload.as_bytes());
    format!("{}.{}", hex::encode(payload), hex::encode(&mac[..16]))
}

fn decode_cursor(token: &str, op: &str, scope: &str, key: &[u8]) -> Result<Cursor, ErrorAnswer> {
    let bad = || ErrorAnswer::invalid("The NextToken is invalid or has expired.");
    let (payload_hex, mac_hex) = token.split_once('.').ok_or_else(bad)?;
    let payload = hex::decode(payload_hex).map_err(|_| bad())?;
    let mac = hex::decode(mac_hex).map_err(|_| bad())?;
    let expected = sigv4::mac(key, &payload);
    if !sigv4::mac_eq(&mac, &expected[..16]) {
        return Err(bad());
    }
    let payload = String::from_utf8(payload).map_err(|_| bad())?;
    let parts: Vec<&str> = payload.split(SEP).collect();
    match parts.as_slice() {
        ["v1", o, s, page, after] if *o == op && *s == digest(scope) => Ok(Cursor {
            page: page.parse().map_err(|_| bad())?,
            after: (*after).to_owned(),
        }),
        _ => Err(bad()),
    }
}

/// A short digest of a listing's arguments, so tokens stay short whatever the filters.
fn digest(scope: &str) -> String {
    use sha2::Digest;
    hex::encode(&sha2::Sha256::digest(scope.as_bytes())[..8])
}
