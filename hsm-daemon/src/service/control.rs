//! The operator's control socket: `DATA_DIR/control.sock`, owner-only. The
//! store is locked by the running daemon, so `hsm-daemon backup` asks the
//! daemon through this socket to write a backup from a read transaction
//! (consistent while it serves).
//!
//! Protocol: one request line, `backup <absolute path>`; one reply line, `ok`
//! or `error: <message>`.

use std::{
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    sync::Arc,
};

use tokio::{
    io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader},
    net::{UnixListener, UnixStream},
};

use super::{HsmState, Prepared};
use crate::store::MasterKey;

/// What the control socket needs to write backups.
#[derive(Debug, Clone)]
pub struct BackupHandle {
    state: Arc<HsmState>,
    cluster_key: Arc<MasterKey>,
    cluster_id: String,
    hsm_id: String,
}

impl Prepared {
    /// A handle that writes backups of this HSM, sealed under `cluster_key`.
    pub fn backup_handle(&self, cluster_key: MasterKey) -> BackupHandle {
        BackupHandle {
            state: Arc::clone(&self.state),
            cluster_key: Arc::new(cluster_key),
            cluster_id: self.config.cluster.id.to_string(),
            hsm_id: self.config.hsm.id.to_string(),
        }
    }
}

impl BackupHandle {
    /// Writes a backup to `out` off the async workers.
    pub async fn write(&self, out: PathBuf) -> Result<(), String> {
        let handle = self.clone();
        tokio::task::spawn_blocking(move || {
            handle.state.store.write_backup(&handle.cluster_key, &handle.cluster_id, &handle.hsm_id, &out)
        })
        .await
        .map_err(|e| format!("backup task failed: {e}"))?
        .map_err(|e| e.to_string())
    }
}

/// Serves the control socket at `path` until the task is dropped.
pub async fn serve_control(path: PathBuf, handle: BackupHandle) -> std::io::Result<()> {
    // A socket left by a daemon that died; the store's lock already proves
    // no other daemon runs on this data directory.
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    loop {
        let (stream, _) = listener.accept().await?;
        let handle = handle.clone();
        tokio::spawn(async move {
            if let Err(e) = answer(stream, &handle).await {
                tracing::warn!(error = %e, "control connection failed");
            }
        });
    }
}

async fn answer(stream: UnixStream, handle: &BackupHandle) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    BufReader::new(read.take(4096)).read_line(&mut line).await?;
    let reply = match line.trim_end().split_once(' ') {
        Some(("backup", path)) if Path::new(path).is_absolute() => match handle.write(PathBuf::from(path)).await {
            Ok(()) => {
                tracing::info!(path, "backup written");
                "ok".to_owned()
            }
            Err(e) => format!("error: {e}"),
        },
        _ => "error: expected `backup <absolute path>`".to_owned(),
    };
    write.write_all(format!("{reply}\n").as_bytes()).await
}

/// Asks the daemon on `socket` for a backup to `out`. `Ok(None)` when no
/// daemon listens there.
pub async fn request_backup(socket: &Path, out: &Path) -> Result<Option<()>, String> {
    let Ok(stream) = UnixStream::connect(socket).await else {
        return Ok(None);
    };
    let (read, mut write) = stream.into_split();
    write.write_all(format!("backup {}\n", out.display()).as_bytes()).await.map_err(|e| e.to_string())?;
    let mut reply = String::new();
    BufReader::new(read).read_line(&mut reply).await.map_err(|e| e.to_string())?;
    match reply.trim_end() {
        "ok" => Ok(Some(())),
        other => Err(other.strip_prefix("error: ").unwrap_or(other).to_owned()),
    }
}
