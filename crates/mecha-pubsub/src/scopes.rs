//! Topic scoping, from the component's metadata (`allowedTopics`,
//! `protectedTopics`, `publishingScopes`, `subscriptionScopes`), as daprd
//! applies it: `allowedTopics` binds every app; a protected topic, or any
//! topic of an app that has a scope entry, needs that entry to list it.

use std::collections::BTreeSet;

/// What one app may do with a component's topics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TopicScopes {
    allowed: BTreeSet<String>,
    protected: BTreeSet<String>,
    publishing: BTreeSet<String>,
    subscribing: BTreeSet<String>,
}

/// The raw metadata values (each optional).
#[derive(Clone, Debug, Default)]
pub struct ScopeSettings<'a> {
    pub allowed_topics: Option<&'a str>,
    pub protected_topics: Option<&'a str>,
    pub publishing_scopes: Option<&'a str>,
    pub subscription_scopes: Option<&'a str>,
}

fn without_spaces(text: &str) -> String {
    text.chars().filter(|c| !c.is_whitespace()).collect()
}

fn topic_list(text: Option<&str>) -> BTreeSet<String> {
    text.map(without_spaces)
        .map(|t| {
            t.split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The topics `app1=t1,t2;app2=t3` gives `app_id`. An entry `app1=` lists
/// the empty topic, which denies every real one, as in daprd.
fn scoped_topics(text: Option<&str>, app_id: &str) -> BTreeSet<String> {
    let mut topics = BTreeSet::new();
    let Some(text) = text.map(without_spaces) else {
        return topics;
    };
    for entry in text.split(';') {
        let Some((app, list)) = entry.split_once('=') else {
            continue;
        };
        if app == app_id {
            topics.extend(list.split(',').map(str::to_owned));
        }
    }
    topics
}

impl TopicScopes {
    pub fn new(app_id: &str, settings: &ScopeSettings<'_>) -> Self {
        Self {
            allowed: topic_list(settings.allowed_topics),
            protected: topic_list(settings.protected_topics),
            publishing: scoped_topics(settings.publishing_scopes, app_id),
            subscribing: scoped_topics(settings.subscription_scopes, app_id),
        }
    }

    fn allows(&self, topic: &str, scoped: &BTreeSet<String>) -> bool {
        if !self.allowed.is_empty() && !self.allowed.contains(topic) {
            return false;
        }
        if scoped.is_empty() && !self.protected.contains(topic) {
            return true;
        }
        scoped.contains(topic)
    }

    pub fn may_publish(&self, topic: &str) -> bool {
        self.allows(topic, &self.publishing)
    }

    pub fn may_subscribe(&self, topic: &str) -> bool {
        self.allows(topic, &self.subscribing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scopes(app: &str, settings: ScopeSettings<'_>) -> TopicScopes {
        TopicScopes::new(app, &settings)
    }

    #[test]
    fn everything_is_allowed_by_default() {
        let s = scopes("app1", ScopeSettings::default());
        assert!(s.may_publish("any") && s.may_subscribe("any"));
    }

    #[test]
    fn publishing_and_subscription_scopes() {
        let settings = ScopeSettings {
            publishing_scopes: Some("app1=t1, t2;app2=t3;app3="),
            subscription_scopes: Some("app2=t1"),
            ..ScopeSettings::default()
        };
        let app1 = scopes("app1", settings.clone());
        assert!(app1.may_publish("t1") && app1.may_publish("t2"));
        assert!(!app1.may_publish("t3"));
        assert!(app1.may_subscribe("t3"), "no subscription scope for app1");
        let app2 = scopes("app2", settings.clone());
        assert!(app2.may_publish("t3") && !app2.may_publish("t1"));
        assert!(app2.may_subscribe("t1") && !app2.may_subscribe("t2"));
        let app3 = scopes("app3", settings.clone());
        assert!(!app3.may_publish("t1"), "an empty entry denies every topic");
        let other = scopes("app9", settings);
        assert!(other.may_publish("t1"), "apps not listed are not limited");
    }

    #[test]
    fn allowed_and_protected_topics() {
        let settings = ScopeSettings {
            allowed_topics: Some("t1,t2,secret"),
            protected_topics: Some("secret"),
            publishing_scopes: Some("admin=secret"),
            ..ScopeSettings::default()
        };
        let app = scopes("app1", settings.clone());
        assert!(app.may_publish("t1"));
        assert!(!app.may_publish("t9"), "not in allowedTopics");
        assert!(
            !app.may_publish("secret"),
            "protected, and no scope lists it"
        );
        assert!(!app.may_subscribe("secret"));
        let admin = scopes("admin", settings);
        assert!(admin.may_publish("secret"));
        assert!(!admin.may_publish("t1"), "admin's scope lists only secret");
    }
}
