//! Discovery: the runtime asking the app what it takes (its subscriptions,
//! its input bindings). An app that is still warming up — its port closed
//! or refusing, or answering 5xx (gRPC: a code daprd maps to a 5xx) — is
//! asked again, with a backoff capped at 1 s, for up to `PATIENCE` (then
//! the question counts as answered "none", with an error in the log, as
//! daprd's single question does); an answer that says "none" (404, 501,
//! `UNIMPLEMENTED`) ends discovery at once. Discovery calls pass outside
//! `--app-max-concurrency`, so a busy app cannot make them give up.

use std::future::Future;
use std::time::Duration;

/// The first wait between two questions; it doubles up to `MAX_WAIT`.
const FIRST_WAIT: Duration = Duration::from_millis(50);
const MAX_WAIT: Duration = Duration::from_secs(1);
/// How long an app that is not ready is waited for.
const PATIENCE: Duration = Duration::from_secs(60);

/// What one question to the app gave.
pub(crate) enum Asked<T> {
    /// An answer, final.
    Answered(T),
    /// No answer yet (the reason): ask again.
    NotYet(String),
}

/// Whether an HTTP status from the app is one to ask again after: a
/// server-side error other than 501 (a server without the route, such as
/// Python's `http.server` for a method it lacks).
pub(crate) fn http_not_yet(status: http::StatusCode) -> bool {
    status.is_server_error() && status != http::StatusCode::NOT_IMPLEMENTED
}

/// Whether a gRPC error from the app is one to ask again after: a failed
/// connection or a server-side error, not "I do not have this".
pub(crate) fn grpc_not_yet(status: &tonic::Status) -> bool {
    status.code() != tonic::Code::Unimplemented
        && mecha_invoke::status::http_status_for_grpc(status.code() as i32) >= 500
}

/// Asks until an answer comes, waiting between questions, for up to
/// `PATIENCE`; then `none` is the answer. `what` names the question in the
/// log line, written once at INFO when the app is not ready yet.
pub(crate) async fn patiently<T, F, Fut>(what: &str, none: T, mut ask: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Asked<T>>,
{
    let gave_up_at = tokio::time::Instant::now() + PATIENCE;
    let mut wait = FIRST_WAIT;
    let mut logged = false;
    loop {
        match ask().await {
            Asked::Answered(answer) => {
                if logged {
                    tracing::info!("the app answered {what}");
                }
                return answer;
            }
            Asked::NotYet(reason) if tokio::time::Instant::now() + wait > gave_up_at => {
                tracing::error!(
                    "the app did not answer {what} within {}s ({reason}); taking it as none",
                    PATIENCE.as_secs()
                );
                return none;
            }
            Asked::NotYet(reason) => {
                if logged {
                    tracing::debug!("still waiting for the app to answer {what}: {reason}");
                } else {
                    tracing::info!("waiting for the app to answer {what}: {reason}");
                    logged = true;
                }
            }
        }
        tokio::time::sleep(wait).await;
        wait = next_wait(wait);
    }
}

fn next_wait(wait: Duration) -> Duration {
    (wait * 2).min(MAX_WAIT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn asks_until_answered() {
        let mut asked = 0;
        let answer = patiently("a question", 0, || {
            asked += 1;
            let n = asked;
            async move {
                if n < 3 {
                    Asked::NotYet(format!("attempt {n}"))
                } else {
                    Asked::Answered(n)
                }
            }
        })
        .await;
        assert_eq!(answer, 3);
    }

    #[test]
    fn waits_double_up_to_a_second() {
        let waits: Vec<u128> = std::iter::successors(Some(FIRST_WAIT), |w| Some(next_wait(*w)))
            .take(8)
            .map(|w| w.as_millis())
            .collect();
        assert_eq!(waits, [50, 100, 200, 400, 800, 1000, 1000, 1000]);
    }

    #[test]
    fn server_side_errors_but_501_are_asked_again() {
        assert!(http_not_yet(http::StatusCode::SERVICE_UNAVAILABLE));
        assert!(http_not_yet(http::StatusCode::INTERNAL_SERVER_ERROR));
        assert!(!http_not_yet(http::StatusCode::NOT_IMPLEMENTED));
        assert!(!http_not_yet(http::StatusCode::NOT_FOUND));
    }

    #[test]
    fn server_side_grpc_errors_are_asked_again() {
        assert!(grpc_not_yet(&tonic::Status::unavailable("down")));
        assert!(grpc_not_yet(&tonic::Status::internal("oops")));
        assert!(!grpc_not_yet(&tonic::Status::unimplemented("no")));
        assert!(!grpc_not_yet(&tonic::Status::permission_denied("no")));
    }
}
