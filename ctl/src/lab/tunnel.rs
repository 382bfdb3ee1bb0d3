//! `ctl lab proxy`, `forward` and `ssh`: TCP to a port of a lab node,
//! carried over the coordinator's Tunnel stream and the node's agent (mutual
//! TLS both ways). Labs have no route from the outside; this is the path.

use std::net::SocketAddr;

use dclab_proto::v1::{self, tunnel_data::Msg, TunnelData};
use dclab_runtime::tunnel::WINDOW;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::remote::{status_error, Client};

/// Opens a tunnel; the coordinator answers only once the agent connected
/// inside the node, so a refused port is an error here.
async fn open(
    client: &mut Client,
    lab: &str,
    node: &str,
    port: u16,
) -> anyhow::Result<(mpsc::Sender<TunnelData>, tonic::Streaming<TunnelData>)> {
    let (tx, rx) = mpsc::channel(WINDOW);
    let hello = TunnelData {
        msg: Some(Msg::Open(v1::TunnelOpen {
            lab: lab.into(),
            node: node.into(),
            port: port.into(),
            tunnel: 0,
        })),
    };
    tx.send(hello).await?;
    let inbound = client
        .tunnel(ReceiverStream::new(rx))
        .await
        .map_err(status_error)?
        .into_inner();
    Ok((tx, inbound))
}

/// Copies `input` into the tunnel and the tunnel into `output` until both
/// directions end.
async fn carry(
    tx: mpsc::Sender<TunnelData>,
    mut inbound: tonic::Streaming<TunnelData>,
    input: impl AsyncRead + Unpin + Send + 'static,
    mut output: impl AsyncWrite + Unpin,
) -> anyhow::Result<()> {
    let up = tokio::spawn(dclab_runtime::tunnel::send_all(input, tx));
    let result = loop {
        match inbound.message().await {
            Ok(Some(TunnelData {
                msg: Some(Msg::Data(data)),
            })) => {
                output.write_all(&data).await?;
                output.flush().await?;
            }
            Ok(Some(_)) => {}
            Ok(None) => break Ok(()),
            Err(status) => break Err(status_error(status)),
        }
    };
    let _ = output.shutdown().await;
    up.abort();
    result
}

/// stdin and stdout to the node's port: an SSH ProxyCommand.
pub async fn proxy(mut client: Client, lab: &str, node: &str, port: u16) -> anyhow::Result<()> {
    let (tx, inbound) = open(&mut client, lab, node, port).await?;
    carry(tx, inbound, tokio::io::stdin(), tokio::io::stdout()).await
}

/// Listens on `listen` and carries every connection to the node's port.
pub async fn forward(
    client: Client,
    lab: &str,
    node: &str,
    port: u16,
    listen: SocketAddr,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    let local = listener.local_addr()?;
    // The first line says where; scripts read it to learn a chosen port.
    println!("forwarding {local} to port {port} of node {node} of lab {lab} (Ctrl-C stops)");
    loop {
        let (conn, peer) = listener.accept().await?;
        let (mut client, lab, node) = (client.clone(), lab.to_string(), node.to_string());
        tokio::spawn(async move {
            let result = async {
                let (tx, inbound) = open(&mut client, &lab, &node, port).await?;
                let (read, write) = conn.into_split();
                carry(tx, inbound, read, write).await
            }
            .await;
            if let Err(e) = result {
                eprintln!("connection from {peer}: {e:#}");
            }
        });
    }
}

/// Quotes a word for the shell that runs ssh's ProxyCommand.
pub(crate) fn shell_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// The ssh command line that reaches `node` through `ctl lab proxy`:
/// `ctl_argv` is how this ctl was called up to (not including) `lab`.
pub fn ssh_command(
    ctl_argv: &[String],
    lab: &str,
    node: &str,
    user: &str,
    identity: Option<&str>,
    command: &[String],
) -> Vec<String> {
    let mut proxy: Vec<String> = ctl_argv.iter().map(|a| shell_quote(a)).collect();
    proxy.extend(["lab", "proxy", lab, node, "22"].iter().map(|a| shell_quote(a)));
    let mut argv = vec![
        "ssh".to_string(),
        "-o".into(),
        format!("ProxyCommand={}", proxy.join(" ")),
        // A lab node's host key is new after every rebuild.
        "-o".into(),
        "StrictHostKeyChecking=no".into(),
        "-o".into(),
        "UserKnownHostsFile=/dev/null".into(),
        "-o".into(),
        "LogLevel=ERROR".into(),
    ];
    if let Some(key) = identity {
        argv.extend(["-i".into(), key.into(), "-o".into(), "IdentitiesOnly=yes".into()]);
    }
    argv.push(format!("{user}@{node}.{lab}"));
    argv.extend(command.iter().cloned());
    argv
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_goes_through_this_ctl_with_its_own_arguments() {
        let argv = ssh_command(
            &["/usr/bin/ctl".into(), "--pki-dir".into(), "/etc/d'lab".into()],
            "lab1",
            "n1",
            "root",
            Some("/k"),
            &["hostname".into()],
        );
        assert_eq!(
            argv[2],
            "ProxyCommand='/usr/bin/ctl' '--pki-dir' '/etc/d'\\''lab' 'lab' 'proxy' 'lab1' 'n1' '22'"
        );
        assert!(
            argv.contains(&"-i".to_string()) && argv.ends_with(&["root@n1.lab1".into(), "hostname".into()])
        );
    }
}
