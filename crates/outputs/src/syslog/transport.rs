//! Where syslog lines go: a UDP socket (one datagram a line), or a TCP or TLS stream kept open
//! between batches and opened again after an error.
//!
//! Neither UDP nor TCP syslog acknowledges anything: a batch counts as delivered once the kernel
//! took it. A stream that breaks is reported as a retry of the whole batch, so lines written just
//! before a break may arrive twice; lines the server had not read when it died are lost with it
//! (RFC 6587 has no acknowledgement; RELP would).

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::Mutex;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::TlsConnector;

use crate::delivery::Failure;

/// How long a connection may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The scheme and place of `address`.
#[derive(Debug, Clone)]
pub enum Address {
    Udp(String),
    Tcp(String),
    Tls { host: String, port: u16 },
}

impl Address {
    /// `udp://host:port`, `tcp://host:port` or `tls://host:port`.
    pub fn parse(text: &str) -> Result<Address, String> {
        let (scheme, rest) = text
            .split_once("://")
            .ok_or("must be udp://host:port, tcp://host:port or tls://host:port")?;
        let (host, port) = rest.rsplit_once(':').ok_or("needs a port (host:port)")?;
        let port: u16 = port
            .parse()
            .map_err(|_| format!("'{port}' is not a port"))?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        if host.is_empty() {
            return Err("needs a host".into());
        }
        let hostport = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        match scheme {
            "udp" => Ok(Address::Udp(hostport)),
            "tcp" => Ok(Address::Tcp(hostport)),
            "tls" => Ok(Address::Tls { host, port }),
            other => Err(format!("scheme '{other}' is not udp, tcp or tls")),
        }
    }

    pub fn is_stream(&self) -> bool {
        !matches!(self, Address::Udp(_))
    }
}

/// An open stream to the server.
enum Stream {
    Tcp(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Tcp(s) => s,
            Stream::Tls(s) => s.get_ref().0,
        }
    }

    /// Whether the server has closed it (or sent anything, which a syslog server never does
    /// but to close): checked before each batch, so a batch is not written into a connection
    /// the server already dropped and reported as sent.
    async fn closed_by_peer(&self) -> bool {
        tokio::time::timeout(Duration::ZERO, self.tcp().readable())
            .await
            .is_ok()
    }

    async fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Stream::Tcp(s) => write_flush(s, bytes).await,
            Stream::Tls(s) => write_flush(s.as_mut(), bytes).await,
        }
    }
}

async fn write_flush(s: &mut (impl AsyncWrite + Unpin), bytes: &[u8]) -> std::io::Result<()> {
    s.write_all(bytes).await?;
    s.flush().await
}

/// One output's way to the server.
pub struct Transport {
    address: Address,
    tls: Option<TlsConnector>,
    stream: Mutex<Option<Stream>>,
    udp: Mutex<Option<UdpSocket>>,
}

impl Transport {
    pub fn new(address: Address, tls: Option<Arc<tokio_rustls::rustls::ClientConfig>>) -> Self {
        Transport {
            address,
            tls: tls.map(TlsConnector::from),
            stream: Mutex::new(None),
            udp: Mutex::new(None),
        }
    }

    /// Sends datagrams, one a line.
    pub async fn send_datagrams(&self, lines: &[String]) -> Result<(), Failure> {
        let Address::Udp(target) = &self.address else {
            unreachable!("datagrams only go to udp addresses")
        };
        let mut udp = self.udp.lock().await;
        if udp.is_none() {
            let any = if target.starts_with('[') {
                "[::]:0"
            } else {
                "0.0.0.0:0"
            };
            let socket = UdpSocket::bind(any)
                .await
                .map_err(|e| failure("cannot open a UDP socket", &e))?;
            socket
                .connect(target)
                .await
                .map_err(|e| failure("cannot resolve the address", &e))?;
            *udp = Some(socket);
        }
        let socket = udp.as_ref().expect("just opened");
        for line in lines {
            if let Err(e) = socket.send(line.as_bytes()).await {
                *udp = None;
                return Err(failure("the datagram was not sent", &e));
            }
        }
        Ok(())
    }

    /// Writes framed bytes to the stream, opening it first if needed; a broken stream is closed
    /// so the retry opens a new one.
    pub async fn write(&self, bytes: &[u8]) -> Result<(), Failure> {
        let mut stream = self.stream.lock().await;
        if let Some(open) = stream.as_ref() {
            if open.closed_by_peer().await {
                *stream = None;
            }
        }
        if stream.is_none() {
            *stream = Some(self.connect().await?);
        }
        let s = stream.as_mut().expect("just opened");
        if let Err(e) = s.write_all(bytes).await {
            *stream = None;
            return Err(failure("the connection broke", &e));
        }
        Ok(())
    }

    async fn connect(&self) -> Result<Stream, Failure> {
        let (target, tls_host) = match &self.address {
            Address::Tcp(t) => (t.clone(), None),
            Address::Tls { host, port } if host.contains(':') => {
                (format!("[{host}]:{port}"), Some(host.clone()))
            }
            Address::Tls { host, port } => (format!("{host}:{port}"), Some(host.clone())),
            Address::Udp(_) => unreachable!("udp has no stream"),
        };
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&target))
            .await
            .map_err(|_| Failure::new(None, "connection timed out"))?
            .map_err(|e| failure("connection failed", &e))?;
        let _ = tcp.set_nodelay(true);
        let (Some(host), Some(tls)) = (tls_host, &self.tls) else {
            return Ok(Stream::Tcp(tcp));
        };
        let name = ServerName::try_from(host)
            .map_err(|e| Failure::new(None, format!("not a server name: {e}")))?;
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, tls.connect(name, tcp))
            .await
            .map_err(|_| Failure::new(None, "TLS handshake timed out"))?
            .map_err(|e| failure("TLS handshake failed", &e))?;
        Ok(Stream::Tls(Box::new(stream)))
    }
}

fn failure(what: &str, e: &std::io::Error) -> Failure {
    Failure::new(None, format!("{what}: {e}"))
}
