//! taskweave's conformance suite on [`ChannelTransport`], a transport written outside the
//! crate: one macro call, as for taskweave's own transports.

use taskweave::Client;
use taskweave::testing::Case;
use taskweave_external_transport::ChannelTransport;

/// Builds a client on the channel transport, runs the case on the embedded executor, closes.
fn run(case: Case) {
    let client = Client::builder()
        .transport(ChannelTransport::new(2))
        .build_blocking()
        .expect("build a client on the channel transport");
    futures::executor::block_on(async {
        case(client.clone()).await;
        client.close().await.expect("close the client");
    });
}

taskweave::conformance_suite!(run: run, capabilities: [closures, local_workers, bulk, worker_gauges]);
