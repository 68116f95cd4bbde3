#!/usr/bin/env python3
"""Cross-checks the WorkMail emulator with a second, independent client: boto3.

botocore is generated from the same service model the emulator embeds, but shares no code
with the Rust SDK, so this catches wire-format mistakes both Rust sides could agree on.

The script starts nothing: point it at a running emulator, e.g.

    workmail-pat-monitor sim --listen 127.0.0.1:45661 --seed 7 --organizations 3 --users 200 &
    python3 tests/boto3_crosscheck.py --endpoint http://127.0.0.1:45661 --region us-east-1

It expects a generated world (organizations with PATs active, inactive and unconfigured, and
one organization that is not Active), deletes one token, and prints a final line
`boto3-crosscheck: N passed, M failed`, exiting non-zero on any failure.

STS: an unknown role is always refused (AccessDenied) and a too-short session name is a
ValidationError. With `--role-arn` (and `--external-id`, if the role requires one), pointing at
an emulator started with `sim --scenario FILE` whose `[[roles]]` grant that role, the script
also assumes it and checks that the returned credentials list exactly the organizations of
the role's account (`--role-organizations ID,ID`). `.ci/run` does that with `--only-sts`
against `sim --scenario tests/fixtures/accounts.toml`.
"""

import argparse
import datetime
import re
import sys
import traceback

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

ORG_ID = re.compile(r"^m-[0-9a-f]{32}$")
# What checks hand to later ones.
STATE_KEYS = {"active", "inactive", "users", "tokens"}


class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def run(self, name, fn):
        try:
            fn()
        except KeyError as e:
            self.failed += 1
            if e.args and e.args[0] in STATE_KEYS:
                print(f"FAIL {name}: needs {e}, which an earlier check did not produce")
            else:
                print(f"FAIL {name}: KeyError: {e}")
        except Exception as e:  # noqa: BLE001 - every failure is reported, none is fatal
            self.failed += 1
            print(f"FAIL {name}: {type(e).__name__}: {e}")
            if not isinstance(e, (AssertionError, ClientError)):
                traceback.print_exc()
        else:
            self.passed += 1
            print(f"ok   {name}")


def expect_error(code, fn, *args, status=400, **kwargs):
    try:
        fn(*args, **kwargs)
    except ClientError as e:
        got = e.response["Error"]["Code"]
        http = e.response["ResponseMetadata"]["HTTPStatusCode"]
        assert got == code, f"expected {code}, got {got}: {e}"
        assert http == status, f"expected HTTP {status}, got {http} for {code}"
        assert e.response["ResponseMetadata"].get("RequestId"), "no request id"
        return e.response["Error"].get("Message", "")
    raise AssertionError(f"expected {code}, but the call succeeded")


def paginate(client, op, key, page_size, **kwargs):
    pages = client.get_paginator(op).paginate(
        PaginationConfig={"PageSize": page_size}, **kwargs
    )
    items, n = [], 0
    for page in pages:
        n += 1
        assert len(page[key]) <= page_size, f"{op}: page of {len(page[key])} > {page_size}"
        items.extend(page[key])
    return items, n


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--endpoint", required=True, help="emulator URL, e.g. http://127.0.0.1:45661")
    ap.add_argument("--region", default="us-east-1")
    ap.add_argument("--role-arn", help="a role the emulator grants (scenario [[roles]])")
    ap.add_argument("--external-id", help="the external id the role requires")
    ap.add_argument(
        "--role-organizations",
        default="",
        help="comma-separated ids of the organizations in the role's account",
    )
    ap.add_argument(
        "--only-sts",
        action="store_true",
        help="only the STS checks (against an emulator started with a scenario that has [[roles]])",
    )
    args = ap.parse_args()
    if args.only_sts and not args.role_arn:
        ap.error("--only-sts needs --role-arn")

    def make(**config):
        return boto3.client(
            "workmail",
            endpoint_url=args.endpoint,
            region_name=args.region,
            aws_access_key_id="AKIDEXAMPLE",
            aws_secret_access_key="dummy-secret",
            config=Config(retries={"max_attempts": 2, "mode": "standard"}, **config),
        )

    def make_sts(**config):
        return boto3.client(
            "sts",
            endpoint_url=args.endpoint,
            region_name=args.region,
            aws_access_key_id="AKIDEXAMPLE",
            aws_secret_access_key="dummy-secret",
            config=Config(retries={"max_attempts": 1, "mode": "standard"}, **config),
        )

    wm = make()
    # boto3 validates parameters client-side; the emulator's own validation needs it off.
    raw = make(parameter_validation=False)
    checks = Checks()
    state = {}

    def organizations():
        orgs, pages = paginate(wm, "list_organizations", "OrganizationSummaries", 1)
        ids = [o["OrganizationId"] for o in orgs]
        assert len(ids) >= 2 and pages == len(ids), (len(ids), pages)
        assert len(set(ids)) == len(ids), "duplicate organizations"
        assert ids == sorted(ids), "organizations not in a stable order"
        assert all(ORG_ID.match(i) for i in ids), ids
        active = [o for o in orgs if o["State"] == "Active"]
        inactive = [o for o in orgs if o["State"] != "Active"]
        assert active and len(inactive) == 1, [o["State"] for o in orgs]
        for o in orgs:
            d = wm.describe_organization(OrganizationId=o["OrganizationId"])
            assert d["OrganizationId"] == o["OrganizationId"]
            assert d["Alias"] == o["Alias"] and d["State"] == o["State"]
            assert d["ARN"].startswith(f"arn:aws:workmail:{args.region}:"), d["ARN"]
            assert isinstance(d["CompletedDate"], datetime.datetime)
        state["active"] = [o["OrganizationId"] for o in active]
        state["inactive"] = inactive[0]["OrganizationId"]

    def users():
        found = {}
        for org in state["active"]:
            small, pages = paginate(wm, "list_users", "Users", 7, OrganizationId=org)
            big, _ = paginate(wm, "list_users", "Users", 100, OrganizationId=org)
            assert small == big, "page size changes the listing"
            ids = [u["Id"] for u in small]
            assert len(set(ids)) == len(ids), "duplicate users"
            assert pages >= 2, "expected several pages"
            assert {u["State"] for u in small} == {"ENABLED", "DISABLED", "DELETED"}
            disabled, _ = paginate(
                wm, "list_users", "Users", 5, OrganizationId=org, Filters={"State": "DISABLED"}
            )
            assert disabled == [u for u in small if u["State"] == "DISABLED"]
            found[org] = small
        state["users"] = found

    def describe_users():
        for org, listed in state["users"].items():
            for u in listed[:15]:
                d = wm.describe_user(OrganizationId=org, UserId=u["Id"])
                assert d["UserId"] == u["Id"] and d["Name"] == u["Name"], (d, u)
                assert d["State"] == u["State"]
                assert d.get("Email") == u.get("Email")
                assert d.get("EnabledDate") == u.get("EnabledDate")
                if u.get("Email"):
                    by_email = wm.describe_user(OrganizationId=org, UserId=u["Email"])
                    assert by_email["UserId"] == u["Id"]
                by_name = wm.describe_user(OrganizationId=org, UserId=u["Name"])
                assert by_name["UserId"] == u["Id"]

    def tokens():
        found = {}
        for org in state["active"]:
            small, pages = paginate(
                wm, "list_personal_access_tokens", "PersonalAccessTokenSummaries", 13,
                OrganizationId=org,
            )
            big, _ = paginate(
                wm, "list_personal_access_tokens", "PersonalAccessTokenSummaries", 100,
                OrganizationId=org,
            )
            assert small == big, "page size changes the listing"
            ids = [t["PersonalAccessTokenId"] for t in small]
            assert len(set(ids)) == len(ids), "duplicate tokens"
            assert pages >= 2 and len(small) > 13
            for t in small:
                assert t["DateCreated"] < t["ExpiresTime"], t
                assert 1 <= len(t["Scopes"]) <= 10, t
                if "DateLastUsed" in t:
                    assert t["DateCreated"] <= t["DateLastUsed"], t
            known = {u["Id"] for u in state["users"][org]}
            assert any(t["UserId"] not in known for t in small), "no owner missing from the directory"
            assert any(not t["Name"].isascii() for t in small), "no unicode token name"
            owner = max(
                (u for u in known),
                key=lambda u: (sum(t["UserId"] == u for t in small), u),
            )
            mine, _ = paginate(
                wm, "list_personal_access_tokens", "PersonalAccessTokenSummaries", 2,
                OrganizationId=org, UserId=owner,
            )
            assert mine == [t for t in small if t["UserId"] == owner]
            found[org] = small
        state["tokens"] = found

    def metadata():
        for org, listed in state["tokens"].items():
            for t in listed[:20]:
                m = wm.get_personal_access_token_metadata(
                    OrganizationId=org, PersonalAccessTokenId=t["PersonalAccessTokenId"]
                )
                for k, v in t.items():
                    assert m.get(k) == v, (k, m.get(k), v)
                assert ("DateLastUsed" in m) == ("DateLastUsed" in t)

    def identity_providers():
        seen = set()
        for org in state["active"]:
            try:
                c = wm.describe_identity_provider_configuration(OrganizationId=org)
            except ClientError as e:
                assert e.response["Error"]["Code"] == "ResourceNotFoundException", e
                seen.add("none")
            else:
                seen.add(c["PersonalAccessTokenConfiguration"]["Status"])
                assert c["AuthenticationMode"] in (
                    "IDENTITY_PROVIDER_ONLY",
                    "IDENTITY_PROVIDER_AND_DIRECTORY",
                )
        assert {"ACTIVE", "INACTIVE", "none"} <= seen, seen

    def delete():
        org = state["active"][0]
        victim = state["tokens"][org][-1]["PersonalAccessTokenId"]
        out = wm.delete_personal_access_token(OrganizationId=org, PersonalAccessTokenId=victim)
        assert out["ResponseMetadata"]["HTTPStatusCode"] == 200
        assert set(out) == {"ResponseMetadata"}, out
        wm.delete_personal_access_token(OrganizationId=org, PersonalAccessTokenId=victim)
        expect_error(
            "ResourceNotFoundException",
            wm.get_personal_access_token_metadata,
            OrganizationId=org,
            PersonalAccessTokenId=victim,
        )

    def validation():
        org = state["active"][0]
        msg = expect_error("InvalidParameterException", raw.list_users, OrganizationId=org, MaxResults=1000)
        assert "maxResults" in msg, msg
        expect_error("InvalidParameterException", raw.list_organizations, MaxResults=0)
        msg = expect_error("InvalidParameterException", raw.describe_organization)
        assert "organizationId" in msg, msg
        expect_error("InvalidParameterException", raw.describe_organization, OrganizationId="m-XYZ")
        expect_error(
            "InvalidParameterException",
            raw.get_personal_access_token_metadata,
            OrganizationId=org,
            PersonalAccessTokenId="not a token!",
        )
        expect_error(
            "InvalidParameterException",
            wm.list_personal_access_tokens,
            OrganizationId=org,
            NextToken="forged",
        )

    def errors():
        org = state["active"][0]
        expect_error(
            "OrganizationNotFoundException",
            wm.list_users,
            OrganizationId="m-" + "0" * 32,
        )
        expect_error("OrganizationStateException", wm.list_users, OrganizationId=state["inactive"])
        expect_error("EntityNotFoundException", wm.describe_user, OrganizationId=org, UserId="nobody")
        expect_error(
            "ResourceNotFoundException",
            wm.get_personal_access_token_metadata,
            OrganizationId=org,
            PersonalAccessTokenId="pat-does-not-exist",
        )

    def sts_refusals():
        sts = make_sts()
        unknown = "arn:aws:iam::210987654321:role/not-granted-by-the-emulator"
        msg = expect_error(
            "AccessDenied", sts.assume_role, RoleArn=unknown, RoleSessionName="crosscheck",
            status=403,
        )
        assert "is not authorized to perform: sts:AssumeRole on resource: " + unknown in msg, msg
        msg = expect_error(
            "ValidationError",
            make_sts(parameter_validation=False).assume_role,
            RoleArn=unknown,
            RoleSessionName="x",
        )
        assert "'roleSessionName'" in msg and "greater than or equal to 2" in msg, msg

    def sts_assume():
        sts = make_sts()
        kwargs = {"ExternalId": args.external_id} if args.external_id else {}
        out = sts.assume_role(
            RoleArn=args.role_arn, RoleSessionName="crosscheck", DurationSeconds=900, **kwargs
        )
        c = out["Credentials"]
        assert c["AccessKeyId"].startswith("ASIA"), c
        assert isinstance(c["Expiration"], datetime.datetime), c
        account = args.role_arn.split(":")[4]
        name = args.role_arn.rsplit("/", 1)[1]
        user = out["AssumedRoleUser"]
        assert user["Arn"] == f"arn:aws:sts::{account}:assumed-role/{name}/crosscheck", user
        assumed = boto3.client(
            "workmail",
            endpoint_url=args.endpoint,
            region_name=args.region,
            aws_access_key_id=c["AccessKeyId"],
            aws_secret_access_key=c["SecretAccessKey"],
            aws_session_token=c["SessionToken"],
            config=Config(retries={"max_attempts": 1, "mode": "standard"}),
        )
        orgs, _ = paginate(assumed, "list_organizations", "OrganizationSummaries", 100)
        ids = sorted(o["OrganizationId"] for o in orgs)
        want = sorted(i for i in args.role_organizations.split(",") if i)
        assert ids == want, (ids, want)
        for org in ids:
            d = assumed.describe_organization(OrganizationId=org)
            assert f":{account}:organization/" in d["ARN"], d["ARN"]
        forged = boto3.client(
            "workmail",
            endpoint_url=args.endpoint,
            region_name=args.region,
            aws_access_key_id=c["AccessKeyId"],
            aws_secret_access_key=c["SecretAccessKey"],
            aws_session_token="forged",
            config=Config(retries={"max_attempts": 1, "mode": "standard"}),
        )
        expect_error("UnrecognizedClientException", forged.list_organizations, status=403)
        if args.external_id:
            expect_error(
                "AccessDenied", sts.assume_role, RoleArn=args.role_arn,
                RoleSessionName="crosscheck", ExternalId=args.external_id + "-wrong", status=403,
            )

    workmail_checks = [
        ("ListOrganizations (paginator) and DescribeOrganization", organizations),
        ("ListUsers (paginator, filters)", users),
        ("DescribeUser by id, name and email", describe_users),
        ("ListPersonalAccessTokens (paginator, by user)", tokens),
        ("GetPersonalAccessTokenMetadata agrees with the listing", metadata),
        ("DescribeIdentityProviderConfiguration", identity_providers),
        ("DeletePersonalAccessToken is empty and idempotent", delete),
        ("validation errors (parameter_validation=False)", validation),
        ("not-found and state errors", errors),
    ]
    sts_checks = [("STS AssumeRole refusals (unknown role, validation)", sts_refusals)]
    if args.role_arn:
        # Without a role to assume, the success path is not run (and not counted).
        sts_checks.append(("STS AssumeRole credentials see their account's organizations", sts_assume))
    for name, fn in ([] if args.only_sts else workmail_checks) + sts_checks:
        checks.run(name, fn)

    print(f"boto3-crosscheck: {checks.passed} passed, {checks.failed} failed")
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())
