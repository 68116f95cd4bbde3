//! Model-driven validation: every constraint of every operation's input shape.

use super::*;

/// One request that breaks one constraint of the model.
#[derive(Debug)]
struct Violation {
    op: &'static str,
    body: Value,
    /// The member as AWS names it in validation messages (`filters.usernamePrefix`).
    path: String,
    /// The start of the constraint's wording.
    constraint: String,
    /// The offending value, when the shape is sensitive (it must not be echoed).
    secret: Option<String>,
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_lowercase().chain(c).collect())
        .unwrap_or_default()
}

fn set_at(body: &mut Value, at: &[String], value: Option<Value>) {
    let (last, parents) = at.split_last().unwrap();
    let mut cur = body;
    for p in parents {
        cur = cur
            .as_object_mut()
            .unwrap()
            .entry(p.clone())
            .or_insert_with(|| json!({}));
    }
    let obj = cur.as_object_mut().unwrap();
    match value {
        Some(v) => {
            obj.insert(last.clone(), v);
        }
        None => {
            obj.remove(last);
        }
    }
}

/// A string of the allowed length that the pattern refuses, if there is one.
fn pattern_breaker(pattern: &str, min: usize, max: usize) -> Option<String> {
    let re = regex::Regex::new(&format!("^(?:{pattern})$")).unwrap();
    let len = min.max(1).min(max);
    ['!', ' ', '#', '~', 'Z', 'é', '*', '\u{7f}']
        .iter()
        .map(|c| c.to_string().repeat(len))
        .find(|s| !re.is_match(s))
}

#[allow(clippy::too_many_arguments)]
fn collect_violations(
    model: &Value,
    op: &'static str,
    shape_name: &str,
    base: &Value,
    at: &[String],
    path: &str,
    out: &mut Vec<Violation>,
    unbreakable: &mut Vec<String>,
) {
    let shape = &model["shapes"][shape_name];
    assert_eq!(shape["type"], "structure", "{shape_name}");
    let join = |m: &str| {
        if path.is_empty() {
            lower_first(m)
        } else {
            format!("{path}.{}", lower_first(m))
        }
    };
    for required in shape["required"].as_array().into_iter().flatten() {
        let name = required.as_str().unwrap();
        let mut body = base.clone();
        let mut where_ = at.to_vec();
        where_.push(name.to_owned());
        set_at(&mut body, &where_, None);
        out.push(Violation {
            op,
            body,
            path: join(name),
            constraint: "Member must not be null".into(),
            secret: None,
        });
    }
    for (name, member) in shape["members"].as_object().unwrap() {
        let target_name = member["shape"].as_str().unwrap();
        let target = &model["shapes"][target_name];
        let mut where_ = at.to_vec();
        where_.push(name.clone());
        let mpath = join(name);
        let sensitive = target["sensitive"].as_bool().unwrap_or(false);
        let mut push = |value: Value, constraint: String| {
            let mut body = base.clone();
            let secret = sensitive.then(|| value.as_str().unwrap_or_default().to_owned());
            set_at(&mut body, &where_, Some(value));
            out.push(Violation {
                op,
                body,
                path: mpath.clone(),
                constraint,
                secret,
            });
        };
        match target["type"].as_str().unwrap() {
            "string" => {
                let min = target["min"].as_u64();
                let max = target["max"].as_u64();
                if let Some(min) = min.filter(|m| *m > 0) {
                    push(
                        json!("a".repeat(min as usize - 1)),
                        format!("Member must have length greater than or equal to {min}"),
                    );
                }
                if let Some(max) = max {
                    push(
                        json!("a".repeat(max as usize + 1)),
                        format!("Member must have length less than or equal to {max}"),
                    );
                }
                if target["enum"].is_array() {
                    push(
                        json!("NOT_A_MEMBER"),
                        "Member must satisfy enum value set: [".into(),
                    );
                }
                if let Some(p) = target["pattern"].as_str() {
                    let lo = min.unwrap_or(0) as usize;
                    let hi = max.unwrap_or(64) as usize;
                    match pattern_breaker(p, lo, hi) {
                        Some(s) => push(
                            json!(s),
                            format!("Member must satisfy regular expression pattern: {p}"),
                        ),
                        None => unbreakable.push(format!("{op}.{mpath} ({target_name})")),
                    }
                }
            }
            "integer" | "long" => {
                if let Some(min) = target["min"].as_i64() {
                    push(
                        json!(min - 1),
                        format!("Member must have value greater than or equal to {min}"),
                    );
                }
                if let Some(max) = target["max"].as_i64() {
                    push(
                        json!(max + 1),
                        format!("Member must have value less than or equal to {max}"),
                    );
                }
            }
            "structure" => {
                collect_violations(
                    model,
                    op,
                    target_name,
                    base,
                    &where_,
                    &mpath,
                    out,
                    unbreakable,
                );
            }
            "boolean" | "timestamp" => {}
            other => panic!(
                "{op}: member {mpath} has a {other} shape this test does not know how to break"
            ),
        }
    }
}

#[tokio::test]
async fn every_model_constraint_of_every_operation_is_enforced() {
    let server = start_scenario(SCENARIO).await;
    let model: Value = serde_json::from_str(model::SERVICE_MODEL).unwrap();
    let valid_member = |name: &str| -> Value {
        match name {
            "OrganizationId" => json!(ORG),
            "UserId" => json!(ALICE),
            "PersonalAccessTokenId" => json!("pat-alice-2"),
            "MaxResults" => json!(100),
            "Filters" => json!({"State": "ENABLED"}),
            other => panic!("no valid value known for required member {other}"),
        }
    };

    let mut violations = Vec::new();
    let mut unbreakable = Vec::new();
    let mut bases = Vec::new();
    for op in OPERATIONS {
        let input = model["operations"][op]["input"]["shape"].as_str().unwrap();
        let shape = &model["shapes"][input];
        let mut base = json!({});
        for r in shape["required"].as_array().into_iter().flatten() {
            let r = r.as_str().unwrap();
            base[r] = valid_member(r);
        }
        collect_violations(
            &model,
            op,
            input,
            &base,
            &[],
            "",
            &mut violations,
            &mut unbreakable,
        );
        // Every optional member the emulator can fill without state of its own.
        let mut full = base.clone();
        for name in shape["members"].as_object().unwrap().keys() {
            if full.get(name).is_none() && name != "NextToken" {
                full[name] = valid_member(name);
            }
        }
        bases.push((*op, base, full));
    }

    for v in &violations {
        let r = call(&server, v.op, &v.body).await;
        let msg = r.assert_error(400, "InvalidParameterException");
        let want = format!(
            "at '{}' failed to satisfy constraint: {}",
            v.path, v.constraint
        );
        assert!(
            msg.contains(&want),
            "{} {}: {msg:?} lacks {want:?}",
            v.op,
            v.body
        );
        assert!(msg.contains("validation error"), "{msg}");
        if let Some(secret) = &v.secret {
            assert!(
                !msg.contains(secret.as_str()),
                "sensitive value echoed: {msg}"
            );
            assert!(msg.contains("Value '***'"), "{msg}");
        }
    }
    // Only a pattern that matches everything cannot be broken.
    assert!(!unbreakable.is_empty());
    for u in &unbreakable {
        assert!(u.ends_with(".nextToken (NextToken)"), "{u}");
    }
    // Every operation had its constraints checked, nested ones included.
    for op in OPERATIONS {
        assert!(violations.iter().any(|v| v.op == *op), "{op}");
    }
    for path in [
        "filters.usernamePrefix",
        "filters.displayNamePrefix",
        "filters.primaryEmailPrefix",
        "filters.state",
        "filters.identityProviderUserIdPrefix",
    ] {
        assert!(violations.iter().any(|v| v.path == path), "{path}");
    }
    assert!(violations.len() >= 50, "{}", violations.len());
    assert!(
        server.sim.deleted().is_empty(),
        "no violating request was served"
    );

    // Valid requests pass validation (Delete last: it deletes).
    bases.sort_by_key(|(op, _, _)| *op == "DeletePersonalAccessToken");
    for (op, base, full) in &bases {
        for body in [base, full] {
            let r = call(&server, op, body).await;
            assert_eq!(r.status, 200, "{op} {body}: {r:?}");
        }
    }
}
