//! Tunnel data (`TunnelData`): the byte-copying both ends of a tunnel
//! share, ctl's and the agent's.

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;

use dclab_proto::v1::{tunnel_data::Msg, TunnelData};

/// Bytes per message.
pub const CHUNK: usize = 32 * 1024;
/// Messages in flight per direction before the sender waits.
pub const WINDOW: usize = 64;

/// Sends what `input` yields, a message per read, until it ends or the
/// other side is gone; dropping `tx` then ends the stream.
pub async fn send_all(mut input: impl AsyncRead + Unpin, tx: mpsc::Sender<TunnelData>) {
    let mut buf = vec![0u8; CHUNK];
    loop {
        match input.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if tx.send(data(buf[..n].to_vec())).await.is_err() {
                    return;
                }
            }
        }
    }
}

pub fn data(bytes: Vec<u8>) -> TunnelData {
    TunnelData {
        msg: Some(Msg::Data(bytes)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn input_arrives_in_order_and_the_stream_ends_with_it() {
        let (tx, mut rx) = mpsc::channel(WINDOW);
        let input: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        send_all(&input[..], tx).await;
        let mut got = Vec::new();
        while let Some(TunnelData {
            msg: Some(Msg::Data(d)),
        }) = rx.recv().await
        {
            assert!(d.len() <= CHUNK);
            got.extend(d);
        }
        assert_eq!(got, input);
    }
}
