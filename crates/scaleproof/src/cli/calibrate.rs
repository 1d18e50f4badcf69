//! `scaleproof calibrate`: the command line of [`scaleproof::calibrate`]. Prints the
//! staircase, the capacity and the proposed scenarios with their arithmetic.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use scaleproof::backend::BackendKind;
use scaleproof::backend::settings::ClusterOptions;
use scaleproof::calibrate::capacity::FollowRule;
use scaleproof::calibrate::staircase::Staircase;
use scaleproof::calibrate::{self, CalibrateOptions, Calibration};
use scaleproof::gate::run::StressOptions;
use scaleproof::report::ExitStatus;

#[derive(Debug, Args)]
#[command(after_long_help = "\
Method: the config's scenarios are replaced by one open-loop staircase against a
single pod (its HPA pinned at 1 replica), run through the gate on the chosen backend,
so the pod is deployed and capped as in a stress run. Each step offers a rate for
--step-s seconds (a 1 s ramp, then a hold judged from its second second on). A step
follows when the pod completes >= 90 % of it with a median latency within 3x (or
+50 ms of) the first step's. A step completing under 90 % is saturated: the pod's
capacity is the median completion rate of the saturated steps.

Cross-check (unless --no-reference): in a second lane, one more pod pinned the same
way runs under a closed loop of --max-in-flight workers, the gate's own way of
measuring one pod (as a `requests`/`concurrency` scenario does), from the staircase's
start to 20 s past its end. Its completion rate over the very seconds of each
saturated step, the median over the steps, is printed beside the capacity with their
ratio. Same seconds, because on a shared host the CPU time a request costs drifts by
tens of percent within a minute: two measurements minutes apart compare the host's
moments, not the methods.

From the capacity, the HPA of the manifests and the backend's detection chain (load
start to a new pod taking traffic: ~5 s local, <= 45 s kind, <= 105 s on a cluster
with upstream's defaults) it proposes normal-load, scale-up and bottleneck scenarios,
each with its arithmetic.

Artifacts (in --out): calibrate.toml (the staircase config), run/ (its gate run:
report.json, summary.md, timeline.svg), calibration.json (the figures, the
cross-check under `reference`).

Exit codes: 0 a capacity was measured, 2 it could not be (the reason is printed).

Examples:
  cargo xtask calibrate --backend local
  cargo xtask calibrate --backend local --config examples/fastapi-iris/stress.toml
  cargo xtask calibrate --backend local --write target/proposed.toml
  cargo xtask stress --backend local --config target/proposed.toml")]
pub struct CalibrateArgs {
    /// Where the pod runs (as for `stress`; required under CI=true).
    #[arg(long, value_enum)]
    pub backend: Option<BackendKind>,
    /// The stress config whose target (manifests, request, backend settings) to measure.
    #[arg(long, default_value = "stress.toml")]
    pub config: PathBuf,
    /// Directory for the artifacts.
    #[arg(long, default_value = "target/scaleproof-calibrate")]
    pub out: PathBuf,
    /// Backend settings, as for `stress`: backend.local.timing=kind (repeatable).
    #[arg(long = "set", value_name = "backend.BACKEND.KEY=VALUE")]
    pub sets: Vec<String>,
    /// The first step's rate (requests per second).
    #[arg(long, default_value_t = 2.0)]
    pub from: f64,
    /// The staircase ends with the first step at or above this rate.
    #[arg(long, default_value_t = 100.0)]
    pub to: f64,
    /// Each step's rate is the previous one's times this.
    #[arg(long, default_value_t = 1.5)]
    pub factor: f64,
    /// Seconds per step.
    #[arg(long, default_value_t = 6.0)]
    pub step_s: f64,
    /// Requests outstanding at most (and the reference pod's workers). Past capacity
    /// the rest wait in the client, so the pod's own queue stays this deep: its
    /// latency stays under the client's timeout. A server whose threads contend for
    /// a lock under the CPU quota pays for the depth: the FastAPI example cost 7 ms
    /// of CPU per prediction at 1 in flight and 13 ms at 10, and at 10 two identical
    /// pods differed by up to 38 % in the same seconds; calibrate such a service at
    /// 1. Raise it for a service whose latency is mostly waiting, not CPU.
    #[arg(long, default_value_t = 10)]
    pub max_in_flight: u32,
    /// Write the config with the proposed scenarios instead of its own here (its
    /// relative paths made absolute, the arithmetic as comments).
    #[arg(long, value_name = "TOML")]
    pub write: Option<PathBuf>,
    /// Skip the cross-check: no second pod beside the staircase (for a node whose
    /// CPU does not fit two capped pods).
    #[arg(long)]
    pub no_reference: bool,
    /// Where load goes (as for `stress`).
    #[arg(long)]
    pub url: Option<String>,
    #[command(flatten)]
    pub cluster: ClusterOptions,
}

pub fn main(args: CalibrateArgs) -> ExitCode {
    let infra = ExitCode::from(ExitStatus::InfrastructureError as u8);
    let Ok(root) = std::env::current_dir() else {
        eprintln!("error: cannot read the current directory (run from the repository root)");
        return infra;
    };
    if args.cluster.dry_run {
        eprintln!(
            "error: calibrate has no --dry-run; `stress --dry-run` shows the setup it shares"
        );
        return infra;
    }
    let options = CalibrateOptions {
        stress: StressOptions {
            backend: args.backend,
            config: args.config,
            out: args.out,
            sets: args.sets,
            scenarios: Vec::new(),
            baseline: None,
            baseline_margin: None,
            url: args.url,
            shared_namespace: false,
            // Calibrate plans its own: one lane, or two with the cross-check.
            lanes: scaleproof::gate::lanes::Lanes::Exactly(1),
            dry_run: false,
            cluster: args.cluster,
            root,
            ci: std::env::var("CI").is_ok_and(|v| v == "true" || v == "1"),
        },
        staircase: Staircase {
            from: args.from,
            to: args.to,
            factor: args.factor,
            step_s: args.step_s,
            max_in_flight: args.max_in_flight,
        },
        rule: FollowRule::default(),
        reference: !args.no_reference,
        write: args.write,
    };
    let runtime = match scaleproof::gate::runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return infra;
        }
    };
    match runtime.block_on(calibrate::calibrate(&options)) {
        Ok(calibration) => {
            print!("{}", render(&calibration));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            infra
        }
    }
}

fn render(c: &Calibration) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "\nstaircase on one pod ({} backend, {}m CPU limit):\n\n",
        c.backend, c.pod.cpu_limit_m
    ));
    out.push_str("  offered req/s  completed req/s  p50 ms   step\n");
    for s in &c.capacity.steps {
        let verdict = if s.follows {
            "follows"
        } else if c.capacity.rule.saturated(s) {
            "saturated"
        } else {
            "latency left its baseline"
        };
        out.push_str(&format!(
            "  {:>13.1}  {:>15.1}  {:>6}   {verdict}\n",
            s.rate,
            s.completed_per_s,
            s.p50_ms.map_or("-".into(), |p| format!("{p:.0}"))
        ));
    }
    out.push_str(&format!(
        "\ncapacity: {:.1} req/s per pod at its {}m limit (median of {} saturated steps; \
         {:.1} ms of CPU per request); the knee at {:.1} req/s\n",
        c.capacity.per_s,
        c.pod.cpu_limit_m,
        c.capacity.saturated_steps,
        c.pod.cpu_limit_m as f64 / c.capacity.per_s,
        c.capacity.knee_rate
    ));
    match &c.reference {
        None => {}
        Some(Ok(r)) => {
            out.push_str(&format!(
                "cross-check: one more pod under a closed loop, beside the staircase (its load \
                 started {:+.1} s from the staircase's), completed {:.1} req/s in the same \
                 seconds (median of {} saturated steps{}): the capacity is {:+.1} % off it\n",
                r.offset_s,
                r.per_s,
                r.steps.len(),
                if r.uncovered_steps > 0 {
                    format!("; {} it did not run through left out", r.uncovered_steps)
                } else {
                    String::new()
                },
                (r.ratio - 1.0) * 100.0
            ));
            out.push_str("  offered req/s  staircase req/s  reference req/s\n");
            for s in &r.steps {
                out.push_str(&format!(
                    "  {:>13.1}  {:>15.1}  {:>15.1}\n",
                    s.rate, s.staircase_per_s, s.reference_per_s
                ));
            }
        }
        Some(Err(why)) => out.push_str(&format!("cross-check: none: {why}\n")),
    }
    out.push_str(&format!("detection chain: {}\n", c.chain.parts));
    for p in &c.proposals {
        let name = p.scenario["name"].as_str().unwrap_or("?");
        out.push_str(&format!("\n[[scenario]] {name}\n"));
        for line in &p.arithmetic {
            out.push_str(&format!("  - {line}\n"));
        }
        let mut keys = p.scenario.clone();
        keys.remove("name");
        keys.remove("description");
        for line in toml::to_string(&keys).unwrap_or_default().lines() {
            if !line.is_empty() {
                out.push_str(&format!("    {line}\n"));
            }
        }
    }
    match &c.written {
        Some(path) => out.push_str(&format!(
            "\nwritten: {} (run it: cargo xtask stress --backend {} --config {})\n",
            path.display(),
            c.backend,
            path.display()
        )),
        None => out.push_str("\n(--write PATH writes the config with these scenarios)\n"),
    }
    out.push_str(&format!(
        "the staircase's own reports: {}\n",
        c.run_dir.display()
    ));
    out
}
