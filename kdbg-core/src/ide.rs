//! Editor integration: VSCode launch/tasks JSONC merging and source-path mapping read from DWARF.
