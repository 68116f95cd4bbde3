//! STS `AssumeRole` over the AWS query protocol (a form-encoded `POST /`, XML answers): the
//! roles the emulator grants, the session credentials it issues, and the check that a request
//! signed with issued credentials carries their session token and is not past their expiry.
//!
//! There is no policy evaluation: a role in [`SimConfig::roles`](super::SimConfig::roles)
//! trusts every caller that brings the external id it requires.

use std::collections::HashMap;

use base64::Engine as _;
use chrono::{DateTime, Duration, SubsecRound, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::sigv4::{Refusal, Refused, refuse};
use super::world::{ACCOUNT_ID, is_account_id};

/// The API version every STS query-protocol request names.
pub const VERSION: &str = "2011-06-15";

/// The namespace of STS's XML answers.
const XMLNS: &str = "https://sts.amazonaws.com/doc/2011-06-15/";

/// The IAM user that callers without assumed-role credentials act as, in error messages.
const CALLER_USER: &str = "emulator";

/// Sessions expired longer ago than this are forgotten (their key is then unknown).
const FORGET_AFTER_HOURS: i64 = 24;

/// A role `AssumeRole` grants.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimRole {
    /// The external id the role's trust policy requires; `None` accepts any or none.
    pub external_id: Option<String>,
}

/// The account of an IAM role ARN (`arn:aws:iam::ACCOUNT:role/[PATH/]NAME`), or `None` when
/// `arn` is not one.
pub fn role_account(arn: &str) -> Option<&str> {
    let rest = arn.strip_prefix("arn:aws:iam::")?;
    let (account, resource) = rest.split_once(':')?;
    let path = resource.strip_prefix("role/")?;
    let name = role_name(path);
    let name_ok = (1..=64).contains(&name.chars().count()) && name.chars().all(name_char);
    let path_ok = path.chars().all(|c| c == '/' || name_char(c));
    (is_account_id(account) && name_ok && path_ok).then_some(account)
}

/// The last segment of a role ARN or path: the role's name, without its path.
fn role_name(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

/// `[\w+=,.@-]`, with `\w` as STS means it: ASCII letters, digits and `_`.
fn name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_+=,.@-".contains(c)
}

/// `[\w+=,.@:/-]`, the external id's characters.
fn external_id_char(c: char) -> bool {
    name_char(c) || c == ':' || c == '/'
}

/// The characters of the model's `arnType` pattern (printable text, tabs and line breaks).
fn text_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{7e}' | '\u{85}')
        || matches!(c, '\u{a0}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..)
}

// === Sessions ===

/// Credentials the emulator issued, and whose they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The secret access key.
    pub secret: String,
    /// The session token every request signed with them must carry.
    pub token: String,
    /// The role's account: the account requests with these credentials act as.
    pub account: String,
    /// `arn:aws:sts::ACCOUNT:assumed-role/NAME/SESSION`.
    pub arn: String,
    /// When they stop working (emulator clock).
    pub expires: DateTime<Utc>,
    /// The role assumed.
    pub role: String,
    /// Whether the role's active sessions were revoked (IAM's "Revoke active sessions": a
    /// deny for sessions issued before then), so every call with them is denied.
    pub revoked: bool,
}

/// The sessions issued so far, by access key id.
pub struct Sessions {
    by_key: HashMap<String, Session>,
    rng: ChaCha8Rng,
}

impl Sessions {
    /// No sessions; issued keys are drawn from `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            by_key: HashMap::new(),
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0x0057_5353_7373),
        }
    }

    /// The session of an issued access key.
    pub fn get(&self, access_key: &str) -> Option<&Session> {
        self.by_key.get(access_key)
    }

    /// How many sessions are remembered.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// Whether none are.
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// Issues new credentials; returns the access key id and the session.
    /// Revokes every session of `role` issued so far; returns how many.
    pub fn revoke(&mut self, role: &str) -> usize {
        let mut n = 0;
        for s in self.by_key.values_mut().filter(|s| s.role == role) {
            s.revoked = true;
            n += 1;
        }
        n
    }

    fn issue(
        &mut self,
        account: &str,
        role: &str,
        arn: String,
        expires: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> (String, Session) {
        let forget = now - Duration::hours(FORGET_AFTER_HOURS);
        self.by_key.retain(|_, s| s.expires > forget);
        const KEY_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        let key: String = std::iter::once("ASIA".to_owned())
            .chain((0..16).map(|_| {
                let i = self.rng.random_range(0..KEY_CHARS.len());
                char::from(KEY_CHARS[i]).to_string()
            }))
            .collect();
        let mut secret = [0u8; 30];
        self.rng.fill(&mut secret);
        let mut token = [0u8; 96];
        self.rng.fill(&mut token);
        let b64 = base64::engine::general_purpose::STANDARD;
        let session = Session {
            secret: b64.encode(secret),
            token: b64.encode(token),
            account: account.to_owned(),
            arn,
            expires,
            role: role.to_owned(),
            revoked: false,
        };
        self.by_key.insert(key.clone(), session.clone());
        (key, session)
    }
}

/// Who made a request that passed the signature checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The account it acts as: the issued session's, or [`ACCOUNT_ID`].
    pub account: String,
    /// Its principal, as error messages name it.
    pub arn: String,
    /// Whether its session was revoked: authenticated, but every action is denied.
    pub revoked: bool,
}

/// The caller of a request signed with `access_key` (and its signature already checked):
/// issued credentials need their session token (`token`, from `X-Amz-Security-Token`) and
/// must not be past their expiry; any other key acts as [`ACCOUNT_ID`], as before STS.
pub fn caller(
    sessions: &Sessions,
    access_key: &str,
    token: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Caller, Refusal> {
    let Some(session) = sessions.get(access_key) else {
        return Ok(Caller {
            account: ACCOUNT_ID.to_owned(),
            arn: format!("arn:aws:iam::{ACCOUNT_ID}:user/{CALLER_USER}"),
            revoked: false,
        });
    };
    if token != Some(session.token.as_str()) {
        return Err(refuse(
            Refused::Unrecognized,
            "The security token included in the request is invalid.",
        ));
    }
    if now >= session.expires {
        return Err(refuse(
            Refused::ExpiredToken,
            "The security token included in the request is expired",
        ));
    }
    Ok(Caller {
        account: session.account.clone(),
        arn: session.arn.clone(),
        revoked: session.revoked,
    })
}

// === The operation ===

/// An STS error answer: HTTP status, `Code` and `Message` (the `Type` is always `Sender`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StsError {
    /// HTTP status.
    pub status: u16,
    /// The error code.
    pub code: &'static str,
    /// The message.
    pub message: String,
}

impl StsError {
    fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// A refused signature or session, in STS's words.
    pub fn refused(r: &Refusal) -> Self {
        Self::new(r.kind.status(), r.kind.sts_code(), r.message.clone())
    }

    /// The `ErrorResponse` document.
    pub fn xml(&self, request_id: &str) -> String {
        format!(
            "<ErrorResponse xmlns=\"{XMLNS}\">\n  <Error>\n    <Type>Sender</Type>\n    \
             <Code>{}</Code>\n    <Message>{}</Message>\n  </Error>\n  \
             <RequestId>{}</RequestId>\n</ErrorResponse>\n",
            self.code,
            escape(&self.message),
            escape(request_id)
        )
    }
}

/// The query-protocol request's `Action`, once it names an operation the emulator has.
pub fn action(params: &Params) -> Result<&'static str, StsError> {
    let action = params.get("Action").unwrap_or_default();
    let version = params.get("Version").unwrap_or_default();
    if action == "AssumeRole" && version == VERSION {
        Ok("AssumeRole")
    } else {
        Err(StsError::new(
            400,
            "InvalidAction",
            format!("Could not find operation {action} for version {version}"),
        ))
    }
}

/// What `AssumeRole` needs besides the request.
pub struct Ctx<'a> {
    /// The roles granted.
    pub roles: &'a HashMap<String, SimRole>,
    /// Who asks.
    pub caller: &'a Caller,
    /// The emulator's clock.
    pub now: DateTime<Utc>,
    /// The request id the answer carries.
    pub request_id: &'a str,
}

/// Runs `AssumeRole`: validates the request as the STS model does, checks the role and its
/// external id, issues session credentials and returns the `AssumeRoleResponse` document.
pub fn assume_role(
    params: &Params,
    sessions: &mut Sessions,
    ctx: &Ctx<'_>,
) -> Result<String, StsError> {
    let req = AssumeRole::from_params(params)?;
    let denied = || {
        StsError::new(
            403,
            "AccessDenied",
            format!(
                "User: {} is not authorized to perform: sts:AssumeRole on resource: {}",
                ctx.caller.arn, req.role_arn
            ),
        )
    };
    let role = ctx.roles.get(req.role_arn).ok_or_else(denied)?;
    if role
        .external_id
        .as_deref()
        .is_some_and(|want| req.external_id != Some(want))
    {
        return Err(denied());
    }
    let account = role_account(req.role_arn).ok_or_else(denied)?;
    let name = role_name(req.role_arn);
    let arn = format!(
        "arn:aws:sts::{account}:assumed-role/{name}/{}",
        req.session_name
    );
    let now = ctx.now.trunc_subsecs(0);
    let expires = now + Duration::seconds(req.duration_secs);
    let (key, session) = sessions.issue(account, req.role_arn, arn, expires, now);
    Ok(format!(
        "<AssumeRoleResponse xmlns=\"{XMLNS}\">\n  <AssumeRoleResult>\n    <AssumedRoleUser>\n      \
         <AssumedRoleId>{}:{}</AssumedRoleId>\n      <Arn>{}</Arn>\n    </AssumedRoleUser>\n    \
         <Credentials>\n      <AccessKeyId>{}</AccessKeyId>\n      \
         <SecretAccessKey>{}</SecretAccessKey>\n      <SessionToken>{}</SessionToken>\n      \
         <Expiration>{}</Expiration>\n    </Credentials>\n  </AssumeRoleResult>\n  \
         <ResponseMetadata>\n    <RequestId>{}</RequestId>\n  </ResponseMetadata>\n\
         </AssumeRoleResponse>\n",
        role_id(req.role_arn),
        escape(req.session_name),
        escape(&session.arn),
        escape(&key),
        escape(&session.secret),
        escape(&session.token),
        expires.format("%Y-%m-%dT%H:%M:%SZ"),
        escape(ctx.request_id),
    ))
}

/// A stable role id (`AROA` and 17 characters) derived from the role's ARN.
fn role_id(arn: &str) -> String {
    use sha2::Digest;
    let digest = hex::encode_upper(sha2::Sha256::digest(arn.as_bytes()));
    format!("AROA{}", &digest[..17])
}

/// The members of an `AssumeRole` request the emulator reads.
struct AssumeRole<'a> {
    role_arn: &'a str,
    session_name: &'a str,
    external_id: Option<&'a str>,
    duration_secs: i64,
}

impl<'a> AssumeRole<'a> {
    /// Reads and validates the members, reporting every violation at once as STS does.
    fn from_params(params: &'a Params) -> Result<Self, StsError> {
        let mut problems = Vec::new();
        let role_arn = params.get("RoleArn");
        let session_name = params.get("RoleSessionName");
        let external_id = params.get("ExternalId");
        let duration = params.get("DurationSeconds");
        let mut check = |member: &str,
                         value: Option<&str>,
                         min: usize,
                         max: usize,
                         ok: fn(char) -> bool,
                         pattern: &str| {
            let Some(v) = value else {
                problems.push(format!(
                    "Value null at '{member}' failed to satisfy constraint: Member must not be null"
                ));
                return;
            };
            let at = format!("Value '{v}' at '{member}' failed to satisfy constraint: Member must");
            if !v.chars().all(ok) {
                problems.push(format!(
                    "{at} satisfy regular expression pattern: {pattern}"
                ));
            }
            let len = v.chars().count();
            if len < min {
                problems.push(format!("{at} have length greater than or equal to {min}"));
            }
            if len > max {
                problems.push(format!("{at} have length less than or equal to {max}"));
            }
        };
        check(
            "roleArn",
            role_arn,
            20,
            2048,
            text_char,
            r"[\u0009\u000A\u000D\u0020-\u007E\u0085\u00A0-\uD7FF\uE000-\uFFFD\u10000-\u10FFFF]+",
        );
        check(
            "roleSessionName",
            session_name,
            2,
            64,
            name_char,
            r"[\w+=,.@-]*",
        );
        if external_id.is_some() {
            check(
                "externalId",
                external_id,
                2,
                1224,
                external_id_char,
                r"[\w+=,.@:\/-]*",
            );
        }
        let mut duration_secs = 3600;
        if let Some(d) = duration {
            let at = format!(
                "Value '{d}' at 'durationSeconds' failed to satisfy constraint: Member must"
            );
            match d.parse::<i64>() {
                Ok(n) if n < 900 => {
                    problems.push(format!("{at} have value greater than or equal to 900"));
                }
                Ok(n) if n > 43_200 => {
                    problems.push(format!("{at} have value less than or equal to 43200"));
                }
                Ok(n) => duration_secs = n,
                Err(_) => problems.push(format!("{at} be an integer")),
            }
        }
        let (Some(role_arn), Some(session_name), true) =
            (role_arn, session_name, problems.is_empty())
        else {
            let n = problems.len();
            return Err(StsError::new(
                400,
                "ValidationError",
                format!(
                    "{n} validation error{} detected: {}",
                    if n == 1 { "" } else { "s" },
                    problems.join("; ")
                ),
            ));
        };
        if role_account(role_arn).is_none() {
            return Err(StsError::new(
                400,
                "ValidationError",
                format!("{role_arn} is not a valid role ARN"),
            ));
        }
        Ok(Self {
            role_arn,
            session_name,
            external_id,
            duration_secs,
        })
    }
}

// === The query protocol ===

/// A form-encoded request's parameters.
#[derive(Debug, Default)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// Parses an `application/x-www-form-urlencoded` body. Malformed percent-encoding, text
    /// that is not UTF-8 and a parameter given twice are refused (`MalformedQueryString`).
    pub fn parse(body: &[u8]) -> Result<Self, StsError> {
        let bad = |what: String| StsError::new(400, "MalformedQueryString", what);
        let mut pairs: Vec<(String, String)> = Vec::new();
        for part in body.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
            let (k, v) = match part.iter().position(|b| *b == b'=') {
                Some(i) => (&part[..i], &part[i + 1..]),
                None => (part, &[][..]),
            };
            let k = decode(k).ok_or_else(|| bad("malformed parameter name".to_owned()))?;
            let v = decode(v).ok_or_else(|| bad(format!("malformed value of {k}")))?;
            if pairs.iter().any(|(seen, _)| *seen == k) {
                return Err(bad(format!("parameter {k} is given more than once")));
            }
            pairs.push((k, v));
        }
        Ok(Self { pairs })
    }

    /// A parameter's value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Decodes one form component: `+` is a space, `%XX` a byte; the result must be UTF-8.
fn decode(s: &[u8]) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// Escapes text for an XML element (the answers' only attribute is a constant). Quotes stay
/// as they are, as STS writes them.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_components_decode_as_browsers_encode_them() {
        let cases: &[(&str, &[u8], Option<&str>)] = &[
            ("plain", b"AssumeRole", Some("AssumeRole")),
            ("plus is a space", b"a+b", Some("a b")),
            ("percent", b"arn%3Aaws%3Aiam", Some("arn:aws:iam")),
            ("lower-case hex", b"%2f", Some("/")),
            ("encoded plus", b"%2B", Some("+")),
            ("utf-8", b"%C3%A9", Some("é")),
            ("truncated", b"%4", None),
            ("not hex", b"%zz", None),
            ("not utf-8", b"%FF", None),
            ("empty", b"", Some("")),
        ];
        for (case, input, want) in cases {
            assert_eq!(decode(input).as_deref(), *want, "case: {case}");
        }
    }

    #[test]
    fn a_form_body_parses_into_parameters() {
        let p =
            Params::parse(b"Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws&Flag").unwrap();
        assert_eq!(p.get("Action"), Some("AssumeRole"));
        assert_eq!(p.get("RoleArn"), Some("arn:aws"));
        assert_eq!(p.get("Flag"), Some(""));
        assert_eq!(p.get("Missing"), None);
        let twice = Params::parse(b"Action=A&Action=B").unwrap_err();
        assert_eq!(twice.code, "MalformedQueryString");
    }

    #[test]
    fn role_arns_name_their_account() {
        let cases = [
            (
                "plain",
                "arn:aws:iam::210987654321:role/pat-monitor",
                Some("210987654321"),
            ),
            (
                "path",
                "arn:aws:iam::210987654321:role/ops/pat-monitor",
                Some("210987654321"),
            ),
            (
                "short account",
                "arn:aws:iam::2109876:role/pat-monitor",
                None,
            ),
            ("a user", "arn:aws:iam::210987654321:user/pat-monitor", None),
            ("no name", "arn:aws:iam::210987654321:role/", None),
            ("other service", "arn:aws:sts::210987654321:role/x", None),
            ("markup", "arn:aws:iam::210987654321:role/<x>", None),
        ];
        for (case, arn, want) in cases {
            assert_eq!(role_account(arn), want, "case: {case}");
        }
    }

    #[test]
    fn xml_text_is_escaped() {
        assert_eq!(
            escape(r#"<a href="x">&'</a>"#),
            r#"&lt;a href="x"&gt;&amp;'&lt;/a&gt;"#
        );
    }
}
