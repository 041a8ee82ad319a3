//! Engineer tools: `switch describe` and `switch encode` (owned by the codec-tools helper).
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct DescribeArgs {}
#[derive(clap::Args)]
pub struct EncodeArgs {}

pub fn describe(_args: &DescribeArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not yet implemented")
}
pub fn encode(_args: &EncodeArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not yet implemented")
}
