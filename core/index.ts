/**
 * Kraftwerk's public API: everything a plugin (built-in or project-local) and a
 * kraftwerk.config.ts may import. Built-in plugins use nothing else.
 */
export { defineConfig, type Config, type ConfigInput, localText, type NodeSpec, relativePath, singleLine } from './config/schema.ts';
export { checkSettings, type SettingsOf, settingsOf, type SettingsShape } from './config/settings.ts';
export { z } from 'zod';
export {
  type DeployContext,
  type DeployOptions,
  type DestroyContext,
  type DumpContext,
  type EnvironmentContext,
  EnvironmentVars,
  FingerprintParts,
  type Logger,
  type NodeContext,
  type NodeFacts,
  NodeProbe,
  type OutcomeContext,
  type OutcomeStatus,
  type ReloadContext,
  type Release,
  RemoteFileSet,
  type RunOptions,
  type SetupContext,
  SetupPackages,
  StatusReport,
  type ContributedScript,
  type HealthCheckRequest,
  SwitchSteps,
  type TrafficControl,
  TrafficSteps,
} from './engine/context.ts';
export { type NodeStatus, NodeStatusParts, type SiteService, type SiteStatus, type StatusSitePart } from './engine/status.ts';
export { type LogSource, LogSources } from './engine/logs.ts';
export { DoctorChecks, type DoctorFinding, type DoctorLevel, type NodeDoctorCheck } from './engine/doctor.ts';
export { aptEnsureCommand, aptInstallCommand, type AptInstallOptions, missingPackagesCommand } from './shell/apt.ts';
export { renderEnvFile, parseEnvFile } from './shell/env-file.ts';
export { deployTimeouts, type DeployTimeouts, formatDuration, parseDuration } from './config/durations.ts';
export { ConfigValueError, CONTROL, describeChar, LINE_BREAKING } from './shell/escape.ts';
export {
  ConfigError,
  HostKeyMismatchError,
  KraftwerkError,
  failureReason,
  lastLines,
  PluginError,
  RemoteCommandError,
  UnknownHostKeyError,
  UsageError,
} from './errors.ts';
export { createHooks, deployPhases, type DeployPhase, type HookName, type Hooks } from './engine/hooks.ts';
export { lifecycleHooks, type LifecycleHooks } from './engine/hooks.ts';
export { type CommandKit, definePlugin, type InitProject, type Plugin, type PluginInit, type Project } from './engine/plugin.ts';
export { hasRole, nodesWithRole, type RoleSpec, type Topology, type TopologyNode } from './engine/topology.ts';
export type { BuiltinPlugins } from './engine/registry.ts';
export { NODE_MARKER, SITES_DIR } from './lifecycle/probe.ts';
export { siteWebGroup } from './config/site.ts';
export { isProvisioned, provisionMarker, writeMarkerCommand } from './lifecycle/provisioned.ts';
export { userVariableCheck } from './lifecycle/site-environment.ts';
export {
  clientAddresses,
  FIREWALL_DIR,
  forgetClients,
  firewallAccepts,
  firewallAcceptPath,
  firewallApplyCommand,
  firewallDrop,
  firewallDropPath,
  ensureSecretFileCommand,
  parseSharedSecret,
  shareSecretCommand,
  hostCidr,
  NODE_CERT,
  NODE_KEY,
  nodeCertificateCommand,
  type GroupTopology,
  isServiceClient,
  type NodeService,
  serveClients,
  setUpServiceNode,
  tapNodeService,
  type NodeServiceSpec,
  tapServiceClients,
  ownPrivateAddress,
  previousServiceUrl,
  type PrivateNode,
  privateAddress,
  serviceNode,
} from './lifecycle/private-network.ts';
export { siteLogRootCommand } from './lifecycle/site-folders.ts';
export { asUser, chain, type Script, pipe, quote, raw, secret, Secret, sequence, sh, type ShellValue } from './shell/sh.ts';
export { currentVenv, inSiteEnv, siteEnvScript } from './shell/site-shell.ts';
export { releaseConfig, type ReleaseConfig, type Site, type SitePaths, sitePaths } from './config/site.ts';
export { Stage, type TaskHandle, TaskList, type TaskSpec } from './engine/tasks.ts';
export { runInline } from './engine/runner.ts';
export { renderTemplate } from './shell/template.ts';
export type { ExecOptions, ExecResult, Remote, RemoteFile, SshTarget, WriteFileOptions } from './remote/remote.ts';
export {
  checkDumpId,
  dumpDir,
  type DumpInfo,
  type DumpKind,
  type DumpManifest,
  listDumpsCommand,
  MANIFEST_FILE,
  newDumpId,
  parseDumpList,
  prepareDumpDirCommand,
  rotateBackupsCommand,
} from './lifecycle/dumps.ts';
