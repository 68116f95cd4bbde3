//! SigV4 checks: the credential scope of every request and, when the emulator knows the
//! secret key, the signature itself (textbook SigV4, header-signed requests).

use chrono::{DateTime, NaiveDateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// How far a request's `X-Amz-Date` may be from the emulator's clock.
const MAX_SKEW_SECS: i64 = 15 * 60;

/// Why a request's credentials were refused: a closed set, each with the code the JSON
/// protocol (WorkMail) and the query protocol (STS) answer it with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// No, unparsable or unknown credentials, or a session token that does not match.
    Unrecognized,
    /// A wrong scope, a date out of the window, or a signature that does not match.
    InvalidSignature,
    /// No usable `X-Amz-Date`.
    Incomplete,
    /// Session credentials past their expiry.
    ExpiredToken,
}

impl Refused {
    /// The WorkMail (JSON protocol) error code.
    pub fn code(self) -> &'static str {
        match self {
            Self::Unrecognized => "UnrecognizedClientException",
            Self::InvalidSignature => "InvalidSignatureException",
            Self::Incomplete => "IncompleteSignatureException",
            Self::ExpiredToken => "ExpiredTokenException",
        }
    }

    /// The STS (query protocol) error code.
    pub fn sts_code(self) -> &'static str {
        match self {
            Self::Unrecognized => "InvalidClientTokenId",
            Self::InvalidSignature => "SignatureDoesNotMatch",
            Self::Incomplete => "IncompleteSignature",
            Self::ExpiredToken => "ExpiredToken",
        }
    }

    /// The HTTP status: 400 for an expired token, as AWS sends it, 403 for the others.
    pub fn status(self) -> u16 {
        match self {
            Self::ExpiredToken => 400,
            Self::Unrecognized | Self::InvalidSignature | Self::Incomplete => 403,
        }
    }
}

/// A refused request: why, and the message AWS sends.
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal {
    /// Why.
    pub kind: Refused,
    /// The message.
    pub message: String,
}

/// A refusal of `kind` with `message`.
pub fn refuse(kind: Refused, message: impl Into<String>) -> Refusal {
    Refusal {
        kind,
        message: message.into(),
    }
}

/// The parts of an `Authorization: AWS4-HMAC-SHA256 ...` header.
#[derive(Debug)]
struct AuthHeader<'a> {
    access_key: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    signed_headers: Vec<&'a str>,
    signature: &'a str,
}

fn parse_auth(value: &str) -> Option<AuthHeader<'_>> {
    let rest = value.strip_prefix("AWS4-HMAC-SHA256")?.trim_start();
    let mut credential = None;
    let mut signed = None;
    let mut signature = None;
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=')?;
        match k {
            "Credential" => credential = Some(v),
            "SignedHeaders" => signed = Some(v),
            "Signature" => signature = Some(v),
            _ => {}
        }
    }
    let mut scope = credential?.split('/');
    let access_key = scope.next()?;
    let date = scope.next()?;
    let region = scope.next()?;
    let service = scope.next()?;
    if scope.next()? != "aws4_request" || scope.next().is_some() {
        return None;
    }
    Some(AuthHeader {
        access_key,
        date,
        region,
        service,
        signed_headers: signed?.split(';').collect(),
        signature: signature?,
    })
}

/// The parts of a request that SigV4 signs.
pub struct Signed<'a> {
    /// HTTP method.
    pub method: &'a str,
    /// Path.
    pub path: &'a str,
    /// Query string.
    pub query: &'a str,
    /// Headers.
    pub headers: &'a http::HeaderMap,
    /// Body.
    pub body: &'a [u8],
}

/// What the emulator knows of an access key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    /// Its secret: the signature is checked.
    Secret(String),
    /// Nothing, and only known keys are accepted: the request is refused.
    Unknown,
    /// Nothing, and any key is accepted: only the scope and date are checked.
    Unchecked,
}

/// A request whose scope, date and (when the key's secret is known) signature passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The region it was signed for.
    pub region: String,
    /// The access key id it was signed with.
    pub access_key: String,
}

/// Checks a request's signature.
///
/// `service` is the service the credential scope must name (`workmail`, `sts`). `regions`
/// are the regions the emulator answers for (the first is its own); the scope must name one
/// of them. `key` says what is known of the access key that signed it. `now` is the
/// emulator's (possibly skewed) clock.
pub fn verify(
    req: &Signed<'_>,
    service: &str,
    regions: &[String],
    key: impl FnOnce(&str) -> Key,
    now: DateTime<Utc>,
) -> Result<Verified, Refusal> {
    let region = regions.first().map_or("", String::as_str);
    let Signed {
        method,
        path,
        query,
        headers,
        body,
    } = *req;
    let missing = || {
        refuse(
            Refused::Unrecognized,
            "The security token included in the request is invalid.",
        )
    };
    let auth = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(missing)?;
    let auth = parse_auth(auth).ok_or_else(missing)?;
    if auth.service != service || !regions.iter().any(|r| r == auth.region) {
        return Err(refuse(
            Refused::InvalidSignature,
            format!(
                "Credential should be scoped to a valid region and service: expected {region}/{service}, got {}/{}",
                auth.region, auth.service
            ),
        ));
    }
    let amz_date = headers
        .get("x-amz-date")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let when = NaiveDateTime::parse_from_str(amz_date, "%Y%m%dT%H%M%SZ")
        .map(|t| t.and_utc())
        .map_err(|_| refuse(Refused::Incomplete, "missing or bad X-Amz-Date"))?;
    if !amz_date.starts_with(auth.date) {
        return Err(refuse(
            Refused::InvalidSignature,
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP",
        ));
    }
    let fmt = |t: DateTime<Utc>| t.format("%Y%m%dT%H%M%SZ").to_string();
    let window = chrono::Duration::seconds(MAX_SKEW_SECS);
    if when < now - window {
        return Err(refuse(
            Refused::InvalidSignature,
            format!(
                "Signature expired: {amz_date} is now earlier than {} ({} - 15 min.)",
                fmt(now - window),
                fmt(now)
            ),
        ));
    }
    if when > now + window {
        return Err(refuse(
            Refused::InvalidSignature,
            format!(
                "Signature not yet current: {amz_date} is still later than {} ({} + 15 min.)",
                fmt(now + window),
                fmt(now)
            ),
        ));
    }
    let verified = Verified {
        region: auth.region.to_owned(),
        access_key: auth.access_key.to_owned(),
    };
    let secret = match key(auth.access_key) {
        Key::Secret(secret) => secret,
        Key::Unknown => return Err(missing()),
        Key::Unchecked => return Ok(verified),
    };
    let expected = signature(
        method,
        path,
        query,
        headers,
        &auth.signed_headers,
        body,
        amz_date,
        &format!(
            "{}/{}/{}/aws4_request",
            auth.date, auth.region, auth.service
        ),
        &secret,
    );
    if constant_time_eq(expected.as_bytes(), auth.signature.as_bytes()) {
        Ok(verified)
    } else {
        Err(refuse(
            Refused::InvalidSignature,
            "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.",
        ))
    }
}

#[allow(clippy::too_many_arguments)]
fn signature(
    method: &str,
    path: &str,
    query: &str,
    headers: &http::HeaderMap,
    signed_headers: &[&str],
    body: &[u8],
    amz_date: &str,
    scope: &str,
    secret: &str,
) -> String {
    let mut canonical_headers = String::new();
    for name in signed_headers {
        let values: Vec<String> = headers
            .get_all(*name)
            .iter()
            .map(|v| collapse_spaces(v.to_str().unwrap_or_default()))
            .collect();
        canonical_headers.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    // The hash of the body received, always: a signed `x-amz-content-sha256` header (an S3
    // convention) is an ordinary header here, and trusting its value would let through a
    // body other than the one that was signed.
    let payload_hash = hex::encode(Sha256::digest(body));
    let canonical_request = format!(
        "{method}\n{}\n{}\n{canonical_headers}\n{}\n{payload_hash}",
        if path.is_empty() { "/" } else { path },
        canonical_query(query),
        signed_headers.join(";"),
    );
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    );
    let mut key = format!("AWS4{secret}").into_bytes();
    for part in scope.split('/') {
        key = hmac(&key, part.as_bytes());
    }
    hex::encode(hmac(&key, string_to_sign.as_bytes()))
}

fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
    pairs.sort_unstable();
    pairs.join("&")
}

fn collapse_spaces(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// HMAC-SHA256 of `data`, for the pagination tokens' tamper check.
pub fn mac(key: &[u8], data: &[u8]) -> Vec<u8> {
    hmac(key, data)
}

/// Whether two MACs are equal, in constant time.
pub fn mac_eq(a: &[u8], b: &[u8]) -> bool {
    constant_time_eq(a, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked example of AWS's SigV4 documentation (the "get-vanilla" request of the
    /// signature test suite), so the canonicalisation is checked against a published value.
    #[test]
    fn signs_the_aws_test_suite_vanilla_request() {
        let mut headers = http::HeaderMap::new();
        headers.insert("host", "example.amazonaws.com".parse().unwrap());
        headers.insert("x-amz-date", "20150830T123600Z".parse().unwrap());
        let sig = signature(
            "GET",
            "/",
            "",
            &headers,
            &["host", "x-amz-date"],
            b"",
            "20150830T123600Z",
            "20150830/us-east-1/service/aws4_request",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        );
        assert_eq!(
            sig,
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
    }
}
