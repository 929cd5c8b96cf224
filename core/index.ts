/**
 * Kraftwerk's public API: everything a plugin (built-in or project-local) and a
 * kraftwerk.config.ts may import. Built-in plugins use nothing else.
 */
export { defineConfig, type Config, type ConfigInput, type CronEntry, type NodeSpec } from './config/schema.ts';
export {
  type DeployContext,
  type DeployOptions,
  type DestroyContext,
  type DumpContext,
  type EnvironmentContext,
  EnvironmentVars,
  type Logger,
  type NodeContext,
  type NodeFacts,
  NodeProbe,
  type ReloadContext,
  type Release,
  RemoteFileSet,
  type RunOptions,
  type SetupContext,
  SetupPackages,
  type StatusReport,
} from './context.ts';
export { aptEnsureCommand, aptInstallCommand, type AptInstallOptions, missingPackagesCommand } from './apt.ts';
export { renderEnvFile, parseEnvFile } from './env.ts';
export { deployTimeouts, type DeployTimeouts, formatDuration, parseDuration } from './durations.ts';
export { ConfigValueError, cronCommand, cronField, cronSchedule, NGINX_EXPIRES, nginxValue, uwsgiIniValue } from './escape.ts';
export {
  ConfigError,
  HostKeyMismatchError,
  KraftwerkError,
  PluginError,
  RemoteCommandError,
  UnknownHostKeyError,
  UsageError,
} from './errors.ts';
export { createHooks, deployPhases, type DeployPhase, type HookName, type Hooks } from './hooks.ts';
export { type CommandKit, definePlugin, type Plugin, type Project } from './plugin.ts';
export { NODE_MARKER, SITES_DIR } from './probe.ts';
export { siteWebGroup } from './site.ts';
export { isProvisioned, provisionMarker } from './provisioned.ts';
export { asUser, chain, type Command, pipe, quote, raw, secret, Secret, sequence, sh, type ShellValue } from './shell.ts';
export { currentVenv, inSiteEnv, siteEnvScript } from './site-shell.ts';
export { releaseConfig, type ReleaseConfig, type Site, type SitePaths, sitePaths } from './site.ts';
export {
  chooseSpareSlot,
  ensureSlotsCommand,
  findLiveSlot,
  retireOtherSlotsCommand,
  type Slot,
  slotDir,
  slotIni,
  slotLogDir,
  slotReleaseLink,
  SLOTS,
  slotService,
  socketAcceptsCommand,
  stopUnswitchedSlotCommand,
} from './slots.ts';
export { getSiteTls, setSiteTls, type SiteTls, TLS_APPLY_STAGE, TLS_DECIDE_STAGE, TLS_ISSUE_STAGE } from './site-tls.ts';
export { Stage, type TaskHandle, TaskList, type TaskSpec } from './tasks.ts';
export { renderTemplate } from './template.ts';
export type { ExecOptions, ExecResult, Remote, RemoteFile, SshTarget, WriteFileOptions } from './transport/remote.ts';
export {
  backupScriptPath,
  checkDumpId,
  dumpDir,
  type DumpInfo,
  type DumpKind,
  type DumpManifest,
  listDumpsCommand,
  newDumpId,
  parseDumpList,
  recordDumpCommands,
  renderBackupScript,
} from './dumps.ts';
export {
  isSimpleCommand,
  listProcessServicesCommand,
  parseSvStatus,
  processLogDir,
  processServiceFiles,
  processServiceName,
  programCommand,
  pruneProcessServicesCommand,
  renderLogRunScript,
  SiteDirs,
  siteDirs,
  siteDirsCommand,
  siteLogRootCommand,
  removeServicesCommand,
  restartCommand,
  restartLoggersCommand,
  RUNIT_SERVICE_DIR,
  RUNIT_SV_DIR,
  type ServiceState,
  startOrRestartCommand,
} from './runit.ts';
export { addHostsEntry, hostsLine, removeHostsEntries } from './hosts-file.ts';
