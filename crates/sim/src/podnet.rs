//! Pod networking of the simulated node: each pod in a network namespace of its own,
//! with its own address, so its container listens on the `containerPort` its manifest
//! declares with the args as written, and the NodePort, like kube-proxy, connects to
//! pod IP:port.
//!
//! Layout, per run: a /16 of 10.0.0.0/8 that no route of the machine uses yet, made
//! `unreachable` as a whole in the host's routing table, so that nothing sent to it
//! can ever leave the machine (a pod's own /30 is more specific and wins while the pod
//! exists). Pod k gets a network namespace `scaleproof-<pid>-<k>` and a veth pair:
//! `eth0` inside with `10.X.a.(4m+2)/30`, the host end `sp<pid>-<k>` with
//! `10.X.a.(4m+1)/30`. Deleting the namespace deletes the pair. A run that was
//! SIGKILLed leaves namespaces named after its pid; the next run removes them and the
//! route of their /16 ([`sweep`]).
//!
//! It needs root and iproute2's `ip`. Without them the node falls back to loopback:
//! every pod on 127.0.0.1 with its `--host`/`--port` args rewritten to a free port,
//! and the report says so ([`PodNetwork::Loopback`]), as it does for CPU limits.

use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// Why a pod's network could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("pod network: `ip {command}` failed: {message}")]
pub struct PodNetError {
    command: String,
    message: String,
}

/// How the simulated node gives pods their network.
#[derive(Debug, Clone)]
pub enum PodNetwork {
    /// A network namespace and address per pod; container args untouched.
    Namespaces(Arc<Subnet>),
    /// All pods on the host's loopback, `--host`/`--port` rewritten per replica.
    Loopback { reason: String },
}

impl PodNetwork {
    /// Namespaces when this process may create them (root, `ip` present, a free /16
    /// whose unreachable route could be added), else loopback with the reason.
    pub fn detect() -> Self {
        if !nix::unistd::geteuid().is_root() {
            return PodNetwork::Loopback {
                reason: "not root: network namespaces need CAP_SYS_ADMIN and CAP_NET_ADMIN".into(),
            };
        }
        if let Err(e) = ip(&["-V"]) {
            return PodNetwork::Loopback {
                reason: format!("iproute2's `ip` is not usable ({e})"),
            };
        }
        let swept = sweep();
        if swept > 0 {
            tracing::info!(
                "removed {swept} pod network namespace(s) left behind by an earlier run"
            );
        }
        match Subnet::claim() {
            Ok(subnet) => PodNetwork::Namespaces(Arc::new(subnet)),
            Err(e) => PodNetwork::Loopback {
                reason: e.to_string(),
            },
        }
    }

    /// For people and report.json.
    pub fn describe(&self) -> String {
        match self {
            PodNetwork::Namespaces(subnet) => format!(
                "a network namespace per pod, addresses from {} over veth pairs (unreachable \
                 beyond the pods); container args as written",
                subnet.cidr()
            ),
            PodNetwork::Loopback { reason } => format!(
                "LOOPBACK ({reason}): every pod on 127.0.0.1, its --host and --port args \
                 rewritten to a free port; a wrong host or port in the manifest goes unnoticed"
            ),
        }
    }
}

/// This run's /16 and the pods it has handed addresses to.
#[derive(Debug)]
pub struct Subnet {
    second_octet: u8,
    next: AtomicU32,
    /// Namespaces not yet deleted, for the drop of the subnet (a panic mid-scenario).
    live: Mutex<Vec<String>>,
}

impl Subnet {
    /// Picks a /16 of 10.0.0.0/8 in 10.100-199 that no route mentions, starting from
    /// one derived from the pid (so concurrent runs rarely try the same), and makes it
    /// unreachable as a whole.
    fn claim() -> Result<Self, PodNetError> {
        let routes = ip_output(&["-4", "route", "show", "table", "all"])?;
        let start = std::process::id() % 100;
        for i in 0..100 {
            let octet = (100 + (start + i) % 100) as u8;
            let prefix = format!("10.{octet}.");
            if routes.lines().any(|l| l.contains(&prefix)) {
                continue;
            }
            let cidr = format!("10.{octet}.0.0/16");
            ip(&["route", "add", "unreachable", &cidr])?;
            return Ok(Subnet {
                second_octet: octet,
                next: AtomicU32::new(0),
                live: Mutex::new(Vec::new()),
            });
        }
        Err(PodNetError {
            command: "route show".into(),
            message: "every /16 of 10.100.0.0-10.199.0.0 is in use".into(),
        })
    }

    pub fn cidr(&self) -> String {
        format!("10.{}.0.0/16", self.second_octet)
    }

    /// A new pod's namespace, veth pair and address.
    pub fn create(self: &Arc<Self>) -> Result<PodNet, PodNetError> {
        let k = self.next.fetch_add(1, Ordering::Relaxed);
        if k >= 16_384 {
            return Err(PodNetError {
                command: "addr add".into(),
                message: format!("this run's {} is used up (16384 pods)", self.cidr()),
            });
        }
        let pid = std::process::id();
        let name = format!("scaleproof-{pid}-{k}");
        let host_end = format!("sp{pid}-{k}");
        let (c, d) = ((k / 64) as u8, ((k % 64) * 4) as u8);
        let host_ip = Ipv4Addr::new(10, self.second_octet, c, d + 1);
        let pod_ip = Ipv4Addr::new(10, self.second_octet, c, d + 2);
        ip(&["netns", "add", &name])?;
        // From here on, dropping the PodNet deletes the namespace (and its veth).
        let net = PodNet {
            name: name.clone(),
            ip: pod_ip,
            subnet: Arc::clone(self),
        };
        self.live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(name.clone());
        let host_cidr = format!("{host_ip}/30");
        let pod_cidr = format!("{pod_ip}/30");
        let steps: [&[&str]; 6] = [
            &[
                "link", "add", &host_end, "type", "veth", "peer", "name", "eth0", "netns", &name,
            ],
            &["addr", "add", &host_cidr, "dev", &host_end],
            &["link", "set", &host_end, "up"],
            &["-n", &name, "addr", "add", &pod_cidr, "dev", "eth0"],
            &["-n", &name, "link", "set", "eth0", "up"],
            &["-n", &name, "link", "set", "lo", "up"],
        ];
        for step in steps {
            ip(step)?;
        }
        Ok(net)
    }
}

impl Drop for Subnet {
    fn drop(&mut self) {
        for name in self
            .live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
        {
            let _ = ip(&["netns", "del", &name]);
        }
        let _ = ip(&["route", "del", "unreachable", &self.cidr()]);
    }
}

/// One pod's network: its namespace and address. Deleted on drop.
#[derive(Debug)]
pub struct PodNet {
    pub name: String,
    pub ip: Ipv4Addr,
    subnet: Arc<Subnet>,
}

impl PodNet {
    /// The command that runs `program` inside this pod's network namespace (`ip netns
    /// exec` replaces itself with the program: same pid, same cgroups).
    pub fn exec_prefix(&self) -> [String; 4] {
        [
            ip_binary().into(),
            "netns".into(),
            "exec".into(),
            self.name.clone(),
        ]
    }
}

impl Drop for PodNet {
    fn drop(&mut self) {
        if let Err(e) = ip(&["netns", "del", &self.name]) {
            tracing::warn!("cannot remove pod network namespace {}: {e}", self.name);
        }
        self.subnet
            .live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|n| n != &self.name);
    }
}

/// Removes the namespaces of runs whose harness is gone, and their /16's
/// unreachable route. Returns how many namespaces it removed.
pub fn sweep() -> usize {
    let Ok(list) = ip_output(&["netns", "list"]) else {
        return 0;
    };
    let mut removed = 0;
    for line in list.lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(owner) = name
            .strip_prefix("scaleproof-")
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if owner == std::process::id() || std::path::Path::new(&format!("/proc/{owner}")).exists() {
            continue;
        }
        if let Ok(addrs) = ip_output(&["-n", name, "-4", "-o", "addr", "show", "dev", "eth0"])
            && let Some(octet) = addrs
                .split_whitespace()
                .find_map(|w| w.strip_prefix("10.").and_then(|r| r.split('.').next()))
        {
            let _ = ip(&["route", "del", "unreachable", &format!("10.{octet}.0.0/16")]);
        }
        if ip(&["netns", "del", name]).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// iproute2's `ip` by absolute path where it usually lives (a non-login root's PATH
/// may lack the sbin directories), else whatever PATH finds.
fn ip_binary() -> &'static str {
    static FOUND: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();
    FOUND.get_or_init(|| {
        ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]
            .into_iter()
            .find(|p| std::path::Path::new(p).is_file())
            .unwrap_or("ip")
    })
}

fn ip(args: &[&str]) -> Result<(), PodNetError> {
    ip_output(args).map(|_| ())
}

/// Runs `ip ARGS` (a short-lived command; it never waits on the network).
fn ip_output(args: &[&str]) -> Result<String, PodNetError> {
    let fail = |message: String| PodNetError {
        command: args.join(" "),
        message,
    };
    let out = Command::new(ip_binary())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| fail(e.to_string()))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(fail(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ))
    }
}
