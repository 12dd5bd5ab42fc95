//! The Prometheus endpoint on `--metrics-port`. It reports what the runtime
//! knows so far (build, start time, loaded components); request metrics come
//! with the observability work.

use std::sync::Arc;
use std::time::SystemTime;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use mecha_runtime::Runtime;

struct MetricsState {
    runtime: Arc<Runtime>,
    started: SystemTime,
}

pub fn router(runtime: Arc<Runtime>) -> Router {
    let state = Arc::new(MetricsState {
        runtime,
        started: SystemTime::now(),
    });
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn metrics(State(state): State<Arc<MetricsState>>) -> impl IntoResponse {
    let info = &state.runtime.info;
    let started = state
        .started
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default();
    let mut out = String::new();
    out.push_str("# HELP mecha_build_info Build information.\n# TYPE mecha_build_info gauge\n");
    out.push_str(&format!(
        "mecha_build_info{{version=\"{}\",app_id=\"{}\"}} 1\n",
        info.runtime_version,
        escape(&info.app_id)
    ));
    out.push_str("# HELP process_start_time_seconds Start time of the process since the Unix epoch.\n# TYPE process_start_time_seconds gauge\n");
    out.push_str(&format!("process_start_time_seconds {started}\n"));
    out.push_str("# HELP dapr_runtime_component_loaded Components loaded, by type.\n# TYPE dapr_runtime_component_loaded gauge\n");
    for component in state.runtime.components().infos() {
        out.push_str(&format!(
            "dapr_runtime_component_loaded{{app_id=\"{}\",component=\"{}\",type=\"{}\"}} 1\n",
            escape(&info.app_id),
            escape(&component.name),
            escape(&component.type_name)
        ));
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
