// The text face of pomai-inspect: a report rendered for people, from the same
// Json that --json prints, so the two never disagree.
#pragma once

#include <string>

#include "inspect/json.h"

namespace pomai::inspect {

// The report as human-readable text (ends with a newline).
std::string RenderText(const Json& report);

}  // namespace pomai::inspect
