//! The command line: daprd's flags, resource errors at start, `validate`.

use crate::harness::{Options, Resources, Sidecar, http_status, run_mecha};

const GOOD: &str = "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: statestore\nspec:\n  type: state.in-memory\n  version: v1\n";

fn bad_resources() -> Resources {
    Resources::new()
        .file("good.yaml", GOOD)
        .file("broken.yaml", "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: [oops\n")
        .file(
            "unknown.yaml",
            "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: cache\nspec:\n  type: state.nosuchdb\n  version: v1\n",
        )
        .file(
            "dup.yaml",
            "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: statestore\nspec:\n  type: state.sqlite\n  version: v1\n  metadata:\n  - name: tableName\n    value: t\n",
        )
        .file(
            "badsub.yaml",
            "apiVersion: dapr.io/v2alpha1\nkind: Subscription\nmetadata:\n  name: badsub\nspec:\n  pubsubname: pubsub\n  topic: t\n  routes:\n    rules:\n    - match: 'event.type =='\n      path: /t\n",
        )
}

#[test]
fn validate_reports_every_error_at_once() {
    let resources = bad_resources();
    let out = run_mecha(&["validate", &resources.path().to_string_lossy()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stdout.contains("broken.yaml") && stdout.contains("invalid YAML at line 4"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "unknown.yaml: component 'cache': unknown component type 'state.nosuchdb'; known types: "
        ) && stdout.contains("pubsub.sqlite")
            && stdout.contains("state.sqlite"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "good.yaml: component 'statestore': a component with this name is already defined in"
        ) && stdout.contains("dup.yaml"),
        "{stdout}"
    );
    assert!(
        stdout.contains("required metadata field 'connectionString' is missing"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "badsub.yaml: subscription 'badsub': invalid match expression 'event.type =='"
        ),
        "{stdout}"
    );
}

#[test]
fn validate_accepts_good_files_and_warns_on_unknown_keys() {
    let resources = Resources::new().file("good.yaml", GOOD).file(
        "sqlite.yaml",
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: durable\nspec:\n  type: state.sqlite\n  version: v1\n  metadata:\n  - name: connectionString\n    value: /tmp/x.db\n  - name: colour\n    value: blue\n---\napiVersion: dapr.io/v2alpha1\nkind: Subscription\nmetadata:\n  name: s\nspec:\n  pubsubname: p\n  topic: t\n  routes:\n    default: /t\n",
    );
    let out = run_mecha(&["validate", &resources.path().to_string_lossy()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("ok: 2 component(s) and 1 subscription(s) valid"),
        "{stdout}"
    );
    assert!(
        stdout.contains("warning:") && stdout.contains("'colour'"),
        "{stdout}"
    );
    assert!(
        stdout.contains("subscription 's': pubsub 'p' is not defined by any component"),
        "{stdout}"
    );
    assert!(
        !resources.path().join("x.db").exists(),
        "validate connects to nothing"
    );
}

/// `validate` runs the sidecar's planning whole: a Configuration whose
/// name resolution the sidecar would refuse (an unknown component, a key
/// it does not know) is reported by `validate` too, and the sidecar does
/// refuse it.
#[test]
fn validate_plans_name_resolution_as_the_sidecar_does() {
    let resources = Resources::new().file("good.yaml", GOOD);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("lan-config.yaml");
    std::fs::write(
        &config,
        "apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: lan\nspec:\n  nameResolution:\n    component: consul\n",
    )
    .unwrap();
    let config = config.to_string_lossy().into_owned();
    let out = run_mecha(&[
        "validate",
        &resources.path().to_string_lossy(),
        "--config",
        &config,
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stdout.contains("unknown name resolution component"),
        "{stdout}"
    );
    let mut sidecar = Sidecar::start_with(
        resources,
        Options {
            args: vec!["--config".into(), config],
            wait_healthy: false,
            ..Options::default()
        },
    );
    let status = sidecar.wait_exit(std::time::Duration::from_secs(10));
    assert!(!status.success(), "the sidecar refuses it too");
    assert!(
        sidecar.logs().contains("unknown name resolution component"),
        "{}",
        sidecar.logs()
    );
}

#[test]
fn resource_errors_stop_the_sidecar_and_name_the_file() {
    let logs = Sidecar::expect_failure(bad_resources());
    assert!(
        logs.contains("broken.yaml") && logs.contains("unknown.yaml") && logs.contains("dup.yaml"),
        "{logs}"
    );
}

#[test]
fn unknown_flags_are_errors() {
    let out = run_mecha(&["sidecar", "--no-such-flag", "1"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--no-such-flag"));
}

#[test]
fn daprd_style_flags_work_and_unsupported_ones_are_reported_once() {
    let resources = Resources::new().file("good.yaml", GOOD);
    let sidecar = Sidecar::start_with(
        resources,
        Options {
            app_id: "go-style".into(),
            args: [
                "-enable-mtls=false",
                "-sentry-address",
                "localhost:50001",
                "--log-as-json",
                "-app-max-concurrency",
                "-1",
            ]
            .map(String::from)
            .to_vec(),
            ..Options::default()
        },
    );
    let logs = sidecar.logs();
    assert_eq!(logs.matches("--sentry-address").count(), 1, "{logs}");
    let first = logs.lines().next().unwrap();
    assert!(
        serde_json::from_str::<serde_json::Value>(first).is_ok(),
        "--log-as-json: {first}"
    );
}

/// `--worker-threads` refuses a value out of range; `MECHA_WORKER_THREADS`,
/// read leniently since before the flag existed, warns about one and keeps
/// the default.
#[test]
fn worker_threads_by_flag_and_environment() {
    for bad in ["0", "1025", "many"] {
        let out = run_mecha(&["sidecar", "--worker-threads", bad]);
        assert!(!out.status.success(), "--worker-threads {bad}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("--worker-threads"), "{stderr}");
    }
    let single = Sidecar::start(Options {
        app_id: "one-thread".into(),
        args: vec!["--worker-threads".into(), "1".into()],
        ..Options::default()
    });
    assert_eq!(http_status(&single.http("/v1.0/healthz")), Some(204));
    let lenient = Sidecar::start(Options {
        app_id: "env-threads".into(),
        env: vec![("MECHA_WORKER_THREADS".into(), "many".into())],
        ..Options::default()
    });
    assert_eq!(http_status(&lenient.http("/v1.0/healthz")), Some(204));
    let logs = lenient.logs();
    assert!(
        logs.contains("MECHA_WORKER_THREADS is not a number from 1 to 1024; ignored"),
        "{logs}"
    );
}

#[test]
fn version_flag() {
    let out = run_mecha(&["--version"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
}

/// The HTTP API speaks h2c (HTTP/2 with prior knowledge) as well.
#[tokio::test]
async fn http_api_speaks_h2c() {
    let sidecar = Sidecar::start(Options::default());
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let response = client
        .get(sidecar.http("/v1.0/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status().as_u16(), 204);
}

/// The README's list of component types is the registry's: a type added or
/// removed without the README (or the other way round) fails here.
#[test]
fn the_readme_lists_exactly_the_registered_component_types() {
    let out = run_mecha(&["components"]);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let registered: std::collections::BTreeSet<String> = stdout
        .lines()
        .filter(|line| !line.contains("compiled out"))
        .filter_map(|line| line.split('\t').next())
        .map(str::to_owned)
        .collect();
    assert!(registered.contains("state.sqlite"), "{stdout}");
    let readme = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"),
    )
    .unwrap();
    let row = readme
        .lines()
        .find(|l| l.starts_with("| components"))
        .expect("the README's components row");
    let blocks = [
        "state.",
        "pubsub.",
        "lock.",
        "secretstores.",
        "configuration.",
        "bindings.",
        "nameresolution.",
        "scheduler.",
    ];
    let listed: std::collections::BTreeSet<String> = row
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|name| blocks.iter().any(|b| name.starts_with(b)))
        .map(str::to_owned)
        .collect();
    assert_eq!(
        listed, registered,
        "README components row vs `mecha components`"
    );
}
