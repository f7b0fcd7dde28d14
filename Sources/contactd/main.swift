import ArgumentParser
import ContactctlCommand
import Foundation

// One program, two commands: run as `contactctl` (the package installs contactctl as a link to
// contactd), it is contactctl. The Swift runtime, Foundation and its 34 MB of ICU data are then
// in the package once, not twice (docs/operations.md, "The package's size").
if CommandLine.arguments.first.map({ URL(fileURLWithPath: $0).lastPathComponent }) == "contactctl" {
    await ContactctlMain.main()
} else {
    await runContactd()
}

/// What `@main` on an `AsyncParsableCommand` does. In an async function: at the top level, the
/// calls resolve to `ParsableCommand`'s synchronous `main()` and `run()`.
func runContactd() async {
    do {
        var command = try ContactdCommand.parseAsRoot()
        if var asyncCommand = command as? any AsyncParsableCommand {
            try await asyncCommand.run()
        } else {
            try command.run()
        }
    } catch {
        ContactdCommand.exit(withError: error)
    }
}
