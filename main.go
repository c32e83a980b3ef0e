// Command chatserver is a WebSocket chat server that replaces a PHP Swoole chat
// server: the same port, path and JSON frames, the same MySQL table app_offline,
// with Redis as the account map. With neither configured it runs on an embedded
// SQLite file and an in-process map.
package main

import (
	"context"
	"embed"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"chatserver/config"
	"chatserver/internal/app"
	"chatserver/internal/boxcheck"
)

// sqlFiles are the migrations, run at start (internal/app).
//
//go:embed sql/mysql/*.sql sql/sqlite/*.sql sql/history/mysql/*.sql sql/history/sqlite/*.sql sql/notify/mysql/*.sql sql/notify/sqlite/*.sql
var sqlFiles embed.FS

// webFiles is the chat page and the client library, served on plain GET.
//
//go:embed web/static
var webFiles embed.FS

// assets are the embedded files as the app reads them: the migrations rooted
// at sql/, the pages at web/static.
func assets() (app.Assets, error) {
	migrations, err := fs.Sub(sqlFiles, "sql")
	if err != nil {
		return app.Assets{}, fmt.Errorf("migrations: %w", err)
	}
	web, err := fs.Sub(webFiles, "web/static")
	if err != nil {
		return app.Assets{}, fmt.Errorf("web files: %w", err)
	}
	return app.Assets{Migrations: migrations, Web: web}, nil
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args, os.Stdout, os.LookupEnv); err != nil {
		fmt.Fprintln(os.Stderr, "chatserver:", err)
		os.Exit(1)
	}
}

// run reads the flags: with -version it prints the build and returns; with
// -check it loads the configuration, checks the services and the machine, and
// returns an error if something fails. Otherwise it loads the configuration,
// starts the server and blocks until ctx is done, then shuts down gracefully;
// or, at SIGUSR2, hands its connections over to a new process on the same
// ports, then shuts down.
func run(ctx context.Context, args []string, stdout io.Writer, env func(string) (string, bool)) error {
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	fs.SetOutput(stdout)
	path := fs.String("config", "config.yaml", "path of the YAML configuration file")
	check := fs.Bool("check", false, "check the configured Redis and MySQL, and this machine's limits against server.max_connections, then exit (non-zero when the box cannot hold it)")
	showVersion := fs.Bool("version", false, "print the version and build information, then exit")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q: the command takes flags only (-config, -check, -version; -help lists them)", fs.Arg(0))
	}
	if *showVersion {
		info, _ := debug.ReadBuildInfo()
		return writeVersion(stdout, version, info)
	}
	explicit := false
	fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "config" })
	cfg, err := config.Load(*path, !explicit, env)
	if err != nil {
		return err
	}
	if *check {
		return runCheck(ctx, cfg, *path, boxcheck.System(), stdout)
	}
	log, err := app.NewLogger(cfg.Log, stdout)
	if err != nil {
		return err
	}
	files, err := assets()
	if err != nil {
		return err
	}
	if err := app.ApplyRuntime(cfg.Runtime, log); err != nil {
		return err
	}
	app.RouteLibraryLogs(log)
	app.WatchGCSignal(ctx, log)
	if cfg.Debug.PprofAddr != "" {
		if err := app.StartPprof(ctx, cfg.Debug.PprofAddr, log); err != nil {
			return fmt.Errorf("debug.pprof_addr: %w", err)
		}
	}
	a, err := app.Start(ctx, cfg, log, files)
	if err != nil {
		log.Error().Err(err).Msg("start failed")
		return err
	}
	a.WatchCerts(ctx)
	select {
	case <-ctx.Done():
	case <-app.HandoverSignal(ctx):
		// A new process started beside this one takes the connections over
		// (README "Upgrades"); SIGTERM meanwhile cuts the pacing short.
		return a.HandOver(ctx)
	}
	log.Info().Msg("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), cfg.Server.ShutdownTimeout)
	defer cancel()
	return a.Close(sctx)
}
