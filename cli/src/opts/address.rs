//! Listening addresses (`serve --listen`, `--admin-listen`): an IP address and a port, with a
//! reason that shows the form when a host name or a bare port is given.

use std::net::SocketAddr;

/// Parses `IP:PORT` (`[IPv6]:PORT`); `localhost:8080` or `8080` are refused with the forms
/// that would do. Used as clap's `value_parser`.
pub fn socket_addr(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let port = match text.rsplit_once(':') {
        Some((_, port)) => port,
        None => text,
    };
    let port = port
        .parse::<u16>()
        .map_or_else(|_| "8080".to_owned(), |p| p.to_string());
    let what = if text.parse::<u16>().is_ok() {
        "a port alone is not an address"
    } else if text.contains(':') {
        "an IP address is needed, not a host name (a name such as localhost can stand for \
         several addresses)"
    } else {
        "expected an IP address and a port"
    };
    Err(format!(
        "{what}: give 127.0.0.1:{port} (this machine only), 0.0.0.0:{port} (every IPv4 \
         interface) or [::]:{port} (every interface)"
    ))
}

#[cfg(test)]
mod tests {
    use super::socket_addr;

    #[test]
    fn addresses_and_their_suggestions() {
        assert_eq!(socket_addr("127.0.0.1:8080").unwrap().port(), 8080);
        assert!(socket_addr("[::1]:0").is_ok());
        let e = socket_addr("localhost:8080").unwrap_err();
        assert!(
            e.contains("host name") && e.contains("127.0.0.1:8080"),
            "{e}"
        );
        let e = socket_addr("9000").unwrap_err();
        assert!(
            e.contains("port alone") && e.contains("127.0.0.1:9000"),
            "{e}"
        );
    }
}
