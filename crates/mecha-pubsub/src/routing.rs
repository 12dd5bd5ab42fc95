//! Routing rules: CEL expressions over the event (`event.type == "x"`),
//! evaluated in order; the first that is true gives the path. A rule with no
//! expression (the default route) always matches.

use std::sync::{Arc, LazyLock};

use cel::{Context, Env, Program, Value};

use crate::cloudevent::CloudEvent;

/// One rule as subscriptions declare it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rule {
    /// The CEL expression; empty for the default route.
    pub matches: String,
    pub path: String,
}

impl Rule {
    pub fn default_route(path: impl Into<String>) -> Self {
        Self {
            matches: String::new(),
            path: path.into(),
        }
    }
}

struct Compiled {
    program: Option<Program>,
    rule: Rule,
}

/// Compiled rules.
pub struct Routes {
    rules: Vec<Compiled>,
}

impl std::fmt::Debug for Routes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.rules.iter().map(|c| &c.rule))
            .finish()
    }
}

static ENV: LazyLock<Arc<Env>> = LazyLock::new(|| Arc::new(Env::stdlib()));

impl Routes {
    /// Compiles every rule; the error names the first invalid expression.
    pub fn compile(rules: &[Rule]) -> Result<Self, String> {
        let rules = rules
            .iter()
            .map(|rule| {
                let program = if rule.matches.trim().is_empty() {
                    None
                } else {
                    Some(ENV.compile(&rule.matches).map_err(|err| {
                        format!("invalid match expression '{}': {err}", rule.matches)
                    })?)
                };
                Ok(Compiled {
                    program,
                    rule: rule.clone(),
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Self { rules })
    }

    pub fn rules(&self) -> impl Iterator<Item = &Rule> {
        self.rules.iter().map(|c| &c.rule)
    }

    /// True when no rule has an expression: every event takes the first
    /// path, and the event need not be looked at.
    pub fn is_static(&self) -> bool {
        self.rules.iter().all(|c| c.program.is_none())
    }

    /// The path of the first rule `event` matches; `None` when none does.
    /// A rule whose expression cannot be evaluated for this event (a field
    /// it lacks) or does not give a boolean does not match it: unlike in
    /// daprd, such an event goes on to the next rule instead of being
    /// redelivered forever.
    pub fn route(&self, event: &CloudEvent) -> Option<&str> {
        let mut context: Option<Context<'_, '_>> = None;
        for compiled in &self.rules {
            let Some(program) = &compiled.program else {
                return Some(&compiled.rule.path);
            };
            let context = context.get_or_insert_with(|| {
                let mut context = Context::with_env(ENV.clone());
                let value = cel::to_value(event).unwrap_or(Value::Null);
                context.add_variable_from_value("event", value);
                context
            });
            match program.execute(context) {
                Ok(Value::Bool(true)) => return Some(&compiled.rule.path),
                Ok(Value::Bool(false)) => {}
                Ok(other) => tracing::debug!(
                    expression = %compiled.rule.matches,
                    "the match expression gave {other:?}, not a boolean; the rule does not match"
                ),
                Err(err) => tracing::debug!(
                    expression = %compiled.rule.matches,
                    "the match expression cannot be evaluated for this event ({err}); the rule does not match"
                ),
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(json: serde_json::Value) -> CloudEvent {
        json.as_object().unwrap().clone()
    }

    fn routes(rules: &[(&str, &str)]) -> Routes {
        let rules: Vec<Rule> = rules
            .iter()
            .map(|(m, p)| Rule {
                matches: (*m).into(),
                path: (*p).into(),
            })
            .collect();
        Routes::compile(&rules).unwrap()
    }

    #[test]
    fn first_matching_rule_wins_then_the_default() {
        let routes = routes(&[
            (
                r#"event.type == "widget" && event.data.price > 100"#,
                "/expensive",
            ),
            (r#"event.type == "widget""#, "/widgets"),
            ("", "/other"),
        ]);
        let ev = |ty: &str, price: serde_json::Value| {
            event(serde_json::json!({"type": ty, "data": {"price": price}}))
        };
        assert_eq!(routes.route(&ev("widget", 150.into())), Some("/expensive"));
        assert_eq!(
            routes.route(&ev("widget", 100.5.into())),
            Some("/expensive"),
            "a double compares with an int"
        );
        assert_eq!(routes.route(&ev("widget", 5.into())), Some("/widgets"));
        assert_eq!(routes.route(&ev("gadget", 5.into())), Some("/other"));
    }

    #[test]
    fn no_match_and_errors() {
        let routes = routes(&[(r#"event.type == "a""#, "/a")]);
        assert_eq!(routes.route(&event(serde_json::json!({"type": "b"}))), None);
        // Expressions that fail for an event do not match it; the next rule
        // (here the default) takes it.
        let lenient = self::routes(&[
            ("event.type", "/not-boolean"),
            ("event.data.nope == 1", "/missing-field"),
            ("", "/default"),
        ]);
        assert_eq!(
            lenient.route(&event(serde_json::json!({"type": "b"}))),
            Some("/default")
        );
        assert!(
            Routes::compile(&[Rule {
                matches: "event.type ==".into(),
                path: "/x".into()
            }])
            .is_err()
        );
    }
}
