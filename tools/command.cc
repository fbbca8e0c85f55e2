#include "tools/command.h"

namespace saelab {

std::vector<Command> AllCommands() {
  return {TokenizeCommand(), HarvestCommand(), TrainCommand(),   EvaluateCommand(),
          ExportCommand(),   ImportCommand(),  InspectCommand(), GenerateCommand(),
          ServeCommand()};
}

}  // namespace saelab
