import Foundation

// The load generator is not built yet (see the performance issue); say so plainly.
FileHandle.standardError.write(Data("contactd-bench: not yet implemented\n".utf8))
exit(69)
