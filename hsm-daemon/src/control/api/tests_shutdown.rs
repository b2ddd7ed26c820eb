//! The server over real sockets: a request in flight when shutdown comes
//! is answered; idle keep-alive connections do not hold shutdown up; the
//! port is closed afterwards.

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::oneshot,
};

use super::*;

/// One HTTP/1.1 request, written by hand (hyper's client is not a
/// dependency); the response read up to its Content-Length.
async fn exchange(stream: &mut TcpStream, operation: &str, body: &str) -> (u16, String) {
    let request = format!(
        "POST / HTTP/1.1\r\nHost: localhost\r\nX-Amz-Target: BaldrApiService.{operation}\r\n\
         Content-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut received = Vec::new();
    loop {
        let mut chunk = [0u8; 4096];
        let read = stream.read(&mut chunk).await.unwrap();
        assert!(read > 0, "connection closed before a full response");
        received.extend_from_slice(&chunk[..read]);
        let text = String::from_utf8_lossy(&received).into_owned();
        if let Some((head, rest)) = text.split_once("\r\n\r\n") {
            let length: usize = head
                .lines()
                .find_map(|line| line.to_ascii_lowercase().strip_prefix("content-length: ").map(str::to_owned))
                .unwrap()
                .parse()
                .unwrap();
            if rest.len() >= length {
                let status = head.split(' ').nth(1).unwrap().parse().unwrap();
                return (status, rest[..length].to_owned());
            }
        }
    }
}

#[tokio::test]
async fn shutdown_lets_the_request_in_flight_finish_then_closes_the_port() {
    let started = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let handler =
        Arc::new(FakeHandler { gate: Some((Arc::clone(&started), Arc::clone(&release))), ..FakeHandler::default() });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, handler, ApiConfig::default(), async {
        let _ = stopped.await;
    }));

    // An idle keep-alive connection, which must not hold shutdown up.
    let mut idle = TcpStream::connect(address).await.unwrap();
    assert_eq!(exchange(&mut idle, "DescribeClusters", "{}").await.0, 200);

    let mut busy = TcpStream::connect(address).await.unwrap();
    let in_flight =
        tokio::spawn(async move { exchange(&mut busy, "ListTags", r#"{"ResourceId": "cluster-igklspoyj5v"}"#).await });
    started.notified().await;
    stop.send(()).unwrap();
    release.notify_one();
    assert_eq!(in_flight.await.unwrap(), (200, "{}".to_owned()));
    server.await.unwrap().unwrap();

    // The idle connection was closed, and nobody listens any more.
    let mut rest = Vec::new();
    assert_eq!(idle.read_to_end(&mut rest).await.unwrap(), 0);
    assert!(TcpStream::connect(address).await.is_err());
}
