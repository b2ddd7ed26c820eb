//! The baseline: a bare tonic unary echo over TLS, with no layers, so that
//! the emulator's rate can be read against what tonic, HTTP/2 and rustls
//! cost on the same machine at the same concurrency.

use std::{future::Future, time::Duration};

use hsm_daemon::pki;
use tokio::net::TcpListener;
use tonic::{
    Request, Response, Status,
    transport::{
        Certificate, Channel, ClientTlsConfig, Endpoint, Identity, Server, ServerTlsConfig, server::TcpIncoming,
    },
};

/// The generated code of `proto/bench/v1/echo.proto`.
#[allow(unreachable_pub, missing_debug_implementations, clippy::all, reason = "generated code")]
pub(crate) mod pb {
    tonic::include_proto!("bench.v1");
}

use pb::{
    EchoMessage,
    echo_service_client::EchoServiceClient,
    echo_service_server::{EchoService, EchoServiceServer},
};

#[derive(Debug)]
struct Echo;

#[tonic::async_trait]
impl EchoService for Echo {
    async fn echo(&self, request: Request<EchoMessage>) -> Result<Response<EchoMessage>, Status> {
        Ok(Response::new(request.into_inner()))
    }
}

/// A bound echo server: its address and the CA its certificate chains to.
#[derive(Debug)]
pub(crate) struct EchoServer {
    pub(crate) address: String,
    pub(crate) ca_pem: String,
    listener: TcpListener,
    identity: Identity,
}

impl EchoServer {
    /// Makes a CA and a server certificate as an HSM's (`hsm_daemon::pki`)
    /// and binds a free 127.0.0.1 port.
    pub(crate) async fn bind() -> anyhow::Result<EchoServer> {
        let ca = pki::generate_ca("hsm-bench-echo")?;
        let cert = pki::issue_server(&ca, "echo", &["localhost".into(), "127.0.0.1".into()])?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?.to_string();
        let identity = Identity::from_pem(&cert.cert_pem, cert.key_pem.as_bytes());
        Ok(EchoServer { address, ca_pem: ca.cert_pem, listener, identity })
    }

    /// Serves until `shutdown` resolves, with TCP_NODELAY as the HSM has it.
    pub(crate) async fn serve(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let tls = ServerTlsConfig::new().identity(self.identity).timeout(Duration::from_secs(10));
        Server::builder()
            .tls_config(tls)?
            .add_service(EchoServiceServer::new(Echo))
            .serve_with_incoming_shutdown(TcpIncoming::from(self.listener).with_nodelay(Some(true)), shutdown)
            .await?;
        Ok(())
    }
}

/// One connection to the echo server, set up as `hsm_client::HsmClient`
/// sets up its own (TLS trusting the CA, TCP_NODELAY).
pub(crate) async fn connect(address: &str, ca_pem: &str) -> anyhow::Result<EchoServiceClient<Channel>> {
    let tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca_pem));
    let channel = Endpoint::from_shared(format!("https://{address}"))?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .tls_config(tls)?
        .connect()
        .await?;
    Ok(EchoServiceClient::new(channel))
}
