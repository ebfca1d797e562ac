//! Usage accounting through the real binary: every answered request has its record, even
//! when the process is killed with SIGKILL in the middle of a load.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tandem_e2e::{CloudOptions, CloudServer, TEST_USER_EMAIL};

/// The `total` line of `tandem-cloud usage`: (requests, errors).
fn totals(report: &str) -> (u64, u64) {
    let line = report
        .lines()
        .find(|line| line.starts_with("total"))
        .unwrap_or_else(|| panic!("no total line in:\n{report}"));
    let numbers: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|field| field.parse().ok())
        .collect();
    (numbers[0], numbers[1])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_answered_request_loses_its_record_when_the_server_is_killed() {
    let mut cloud = CloudServer::start(CloudOptions::default())
        .await
        .expect("cloud starts");
    let client = reqwest::Client::new();
    let answered = Arc::new(AtomicUsize::new(0));
    let url = format!("{}/v1/completions", cloud.url());
    let body = json!({"language": "rust", "path": "src/lib.rs", "prefix": "fn a", "suffix": "}"});
    let workers: Vec<_> = (0..16)
        .map(|_| {
            let (client, url, body, key) = (
                client.clone(),
                url.clone(),
                body.clone(),
                cloud.api_key().to_owned(),
            );
            let answered = Arc::clone(&answered);
            tokio::spawn(async move {
                loop {
                    let sent = client.post(&url).bearer_auth(&key).json(&body).send().await;
                    match sent {
                        Ok(response) if response.status() == 200 => {
                            // Counted once the whole answer has arrived.
                            if response.bytes().await.is_ok() {
                                answered.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                        Ok(response) => panic!("unexpected status {}", response.status()),
                        Err(_) => return, // The server is gone.
                    }
                }
            })
        })
        .collect();
    // Let the load run, then kill without warning.
    while answered.load(Ordering::SeqCst) < 300 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let pid = cloud.pid().expect("running");
    let killed = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    for worker in workers {
        worker.await.expect("worker ends");
    }
    while cloud.is_running() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let answered = answered.load(Ordering::SeqCst) as u64;

    let report = cloud
        .run_command(&["usage", "--email", TEST_USER_EMAIL])
        .await
        .expect("usage report");
    let (requests, errors) = totals(&report);
    assert_eq!(errors, 0, "{report}");
    // Requests the server recorded but whose answer the kill cut off may add to it.
    assert!(
        requests >= answered,
        "{answered} answered, {requests} recorded:\n{report}"
    );
    assert!(
        requests <= answered + 16,
        "{answered} answered, {requests} recorded"
    );
}
