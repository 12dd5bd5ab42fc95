//! CloudEvents and the pub/sub parsers around them: a publish body wrapped
//! or taken as a CloudEvent (`application/cloudevents+json`), a broker's
//! message read as the event it carries, routing rules (CEL) compiled and
//! run over it, and the app's `/dapr/subscribe` answer. The first byte
//! picks what the rest is.
#![no_main]

use std::time::{Duration, SystemTime};

use libfuzzer_sys::fuzz_target;
use mecha_pubsub::cloudevent::{self, Origin};
use mecha_pubsub::routing::{Routes, Rule};
use mecha_pubsub::subscription::parse_programmatic;

const ORIGIN: Origin<'static> = Origin {
    app_id: "app",
    pubsub: "pubsub",
    topic: "orders",
    traceparent: "",
    tracestate: "",
};

fn read_event(event: &cloudevent::CloudEvent) {
    let _ = cloudevent::has_expired(event, SystemTime::now());
    let _ = cloudevent::data_bytes(event);
    let _ = cloudevent::extensions(event);
    let _ = cloudevent::attribute(event, "type");
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    match which % 5 {
        // A publish body of a content type given in its first line.
        0 => {
            let (content_type, body) = match rest.iter().position(|b| *b == b'\n') {
                Some(at) => (std::str::from_utf8(&rest[..at]).ok(), &rest[at + 1..]),
                None => (None, rest),
            };
            let event =
                cloudevent::wrap(body, content_type, &Default::default(), &ORIGIN, now, None);
            read_event(&event);
        }
        // A CloudEvent the app publishes as it is.
        1 => {
            if let Ok(event) = cloudevent::augment(rest, &ORIGIN, now, Some(Duration::from_secs(5)))
            {
                read_event(&event);
            }
        }
        // A broker's message, and a routing rule over it: the first line
        // is the rule's expression.
        2 | 3 => {
            let (expression, message) = match rest.iter().position(|b| *b == b'\n') {
                Some(at) => (
                    String::from_utf8_lossy(&rest[..at]).into_owned(),
                    &rest[at + 1..],
                ),
                None => (String::from_utf8_lossy(rest).into_owned(), &b"{}"[..]),
            };
            let Ok(serde_json::Value::Object(event)) = serde_json::from_slice(message) else {
                return;
            };
            read_event(&event);
            let rules = [
                Rule {
                    matches: expression,
                    path: "/a".into(),
                },
                Rule::default_route("/b"),
            ];
            if let Ok(routes) = Routes::compile(&rules) {
                let _ = routes.route(&event);
            }
        }
        // The app's subscription list.
        _ => {
            let _ = parse_programmatic(rest);
        }
    }
});
