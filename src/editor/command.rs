//! Every command a user can run, as data: a stable name (used in the
//! config's `[keys]` table), a title (shown in the palette) and a
//! description (shown in the help screen). The palette and the help screen
//! are generated from this table, so nothing can be bound but not listed.

macro_rules! commands {
    ($($variant:ident, $name:literal, $title:literal, $desc:literal;)*) => {
        /// A command.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Command {
            $(
                #[doc = $desc]
                $variant,
            )*
        }

        impl Command {
            /// Every command, in palette order.
            pub const ALL: &'static [Command] = &[$(Command::$variant),*];

            /// Stable name, as used in the config file.
            pub fn name(self) -> &'static str {
                match self { $(Command::$variant => $name),* }
            }

            /// Title shown in the palette.
            pub fn title(self) -> &'static str {
                match self { $(Command::$variant => $title),* }
            }

            /// One-line description for the help screen.
            pub fn description(self) -> &'static str {
                match self { $(Command::$variant => $desc),* }
            }

            /// Looks a command up by its stable name.
            pub fn from_name(name: &str) -> Option<Command> {
                match name { $($name => Some(Command::$variant),)* _ => None }
            }
        }
    };
}

commands! {
    CommandPalette, "command_palette", "Command Palette", "Run any command by name";
    Help, "help", "Help", "Show every key and command";
    QuickOpen, "quick_open", "Quick Open File", "Open a file by fuzzy name";
    Save, "save", "Save", "Write the file to disk (atomically)";
    SaveAs, "save_as", "Save As", "Write the buffer to a new path";
    NewFile, "new_file", "New File", "Open a new untitled buffer";
    CloseBuffer, "close_buffer", "Close Buffer", "Close the current buffer";
    NextBuffer, "next_buffer", "Next Buffer", "Switch to the next tab";
    PreviousBuffer, "previous_buffer", "Previous Buffer", "Switch to the previous tab";
    Quit, "quit", "Quit", "Leave lshed (asks about unsaved work)";
    Undo, "undo", "Undo", "Undo your last change";
    Redo, "redo", "Redo", "Redo what you undid";
    Copy, "copy", "Copy", "Copy the selection (or the line)";
    Cut, "cut", "Cut", "Cut the selection (or the line)";
    Paste, "paste", "Paste", "Paste from the clipboard";
    SelectAll, "select_all", "Select All", "Select the whole buffer";
    Find, "find", "Find", "Search in the buffer";
    FindNext, "find_next", "Find Next", "Go to the next match";
    FindPrevious, "find_previous", "Find Previous", "Go to the previous match";
    Replace, "replace", "Replace", "Find and replace in the buffer";
    GotoLine, "goto_line", "Go to Line", "Jump to a line (and column: 12:5)";
    Indent, "indent", "Indent", "Indent the selected lines (or insert an indent)";
    Outdent, "outdent", "Outdent", "Remove one indent level from the selected lines";
    DeleteLine, "delete_line", "Delete Line", "Delete the current line(s)";
    DuplicateLine, "duplicate_line", "Duplicate Line", "Copy the current line(s) below";
    ToggleFileTree, "toggle_file_tree", "Toggle File Tree", "Show or hide the file tree";
    FocusFileTree, "focus_file_tree", "Focus File Tree", "Move focus between the tree and the editor";
    RevealInTree, "reveal_in_tree", "Reveal in File Tree", "Show the current file in the tree";
    TreeNewFile, "tree_new_file", "New File in Tree", "Create a file in the selected folder";
    TreeNewFolder, "tree_new_folder", "New Folder in Tree", "Create a folder in the selected folder";
    TreeRename, "tree_rename", "Rename in Tree", "Rename the selected file or folder";
    TreeDelete, "tree_delete", "Delete in Tree", "Delete the selected file or folder";
    RefreshTree, "refresh_tree", "Refresh File Tree", "Re-read the folder from disk";
    ToggleSoftWrap, "toggle_soft_wrap", "Toggle Soft Wrap", "Wrap long lines or scroll sideways";
    ToggleLineNumbers, "toggle_line_numbers", "Toggle Line Numbers", "Show or hide line numbers";
    MoveLeft, "move_left", "Cursor Left", "Move one character left";
    MoveRight, "move_right", "Cursor Right", "Move one character right";
    MoveUp, "move_up", "Cursor Up", "Move one line up";
    MoveDown, "move_down", "Cursor Down", "Move one line down";
    SelectLeft, "select_left", "Select Left", "Extend the selection left";
    SelectRight, "select_right", "Select Right", "Extend the selection right";
    SelectUp, "select_up", "Select Up", "Extend the selection up";
    SelectDown, "select_down", "Select Down", "Extend the selection down";
    WordLeft, "word_left", "Word Left", "Move to the previous word";
    WordRight, "word_right", "Word Right", "Move to the next word";
    SelectWordLeft, "select_word_left", "Select Word Left", "Extend the selection to the previous word";
    SelectWordRight, "select_word_right", "Select Word Right", "Extend the selection to the next word";
    LineStart, "line_start", "Line Start", "Move to the first non-blank, then column 1";
    LineEnd, "line_end", "Line End", "Move to the end of the line";
    SelectLineStart, "select_line_start", "Select to Line Start", "Extend the selection to the line start";
    SelectLineEnd, "select_line_end", "Select to Line End", "Extend the selection to the line end";
    PageUp, "page_up", "Page Up", "Move one screen up";
    PageDown, "page_down", "Page Down", "Move one screen down";
    SelectPageUp, "select_page_up", "Select Page Up", "Extend the selection one screen up";
    SelectPageDown, "select_page_down", "Select Page Down", "Extend the selection one screen down";
    DocStart, "doc_start", "Go to Start", "Move to the start of the buffer";
    DocEnd, "doc_end", "Go to End", "Move to the end of the buffer";
    SelectDocStart, "select_doc_start", "Select to Start", "Extend the selection to the start";
    SelectDocEnd, "select_doc_end", "Select to End", "Extend the selection to the end";
    InsertNewline, "insert_newline", "New Line", "Break the line (keeps the indentation)";
    DeleteBackward, "delete_backward", "Delete Backward", "Delete the character before the cursor";
    DeleteForward, "delete_forward", "Delete Forward", "Delete the character after the cursor";
    DeleteWordBackward, "delete_word_backward", "Delete Word Backward", "Delete to the previous word start";
    DeleteWordForward, "delete_word_forward", "Delete Word Forward", "Delete to the next word start";
    Escape, "escape", "Cancel", "Close the open prompt or clear the selection";
    Share, "share", "Share", "Share this folder: start a session and copy the invite link";
    Join, "join", "Join", "Join a session: paste an invite link";
    Leave, "leave", "Leave", "Leave the session (the others carry on)";
    EndSession, "end_session", "End Session", "Host: end the session for everyone";
    CopyInviteLink, "copy_invite_link", "Copy Invite Link", "Copy the invite link again and show it";
    OpenJoinPage, "open_join_page", "Open Join Page", "Host: open the invite link on the relay's join page in a browser";
    OpenLink, "open_link", "Open Link Under Cursor", "Open the link under the cursor in a browser (lshed links: join)";
    FollowParticipant, "follow_participant", "Follow Participant", "Pick someone whose view yours follows";
    Participants, "participants", "Participants", "Who is here; host: read-only, remove";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for c in Command::ALL {
            assert!(seen.insert(c.name()), "duplicate name {}", c.name());
            assert_eq!(Command::from_name(c.name()), Some(*c));
        }
    }
}
