"""Stages, priorities and the runner's own environment keys."""
import collections

Stage = collections.namedtuple('Stage', 'index id description always')

STAGES = (
    Stage(0, 'boot', 'Booting', False),
    Stage(1, 'init', 'Initializing', True),
    Stage(2, 'setup', 'Environment setup', False),
    Stage(3, 'internal_packages', 'Environment packages setup', False),
    Stage(4, 'programs', 'Programs detection', False),
    Stage(5, 'late_setup', 'Environment setup (late)', False),
    Stage(6, 'customization', 'Environment customization', False),
    Stage(7, 'validation', 'Setup validation', False),
    Stage(8, 'transaction-prepare', 'Transaction setup', False),
    Stage(9, 'early_misc', 'Misc configuration (early)', False),
    Stage(10, 'packages', 'Package installation', False),
    Stage(11, 'misc', 'Misc configuration', False),
    Stage(12, 'transaction-commit', 'Transaction commit', False),
    Stage(13, 'closeup', 'Closing up', False),
    Stage(14, 'cleanup', 'Clean up', True),
    Stage(15, 'pre-terminate', 'Pre-termination', True),
    Stage(16, 'terminate', 'Termination', True),
)
STAGE_BY_ID = {s.id: s for s in STAGES}


class Stages:
    """Stage ids, as attributes for use in @event(stage=...)."""
    BOOT = 'boot'
    INIT = 'init'
    SETUP = 'setup'
    INTERNAL_PACKAGES = 'internal_packages'
    PROGRAMS = 'programs'
    LATE_SETUP = 'late_setup'
    CUSTOMIZATION = 'customization'
    VALIDATION = 'validation'
    TRANSACTION_BEGIN = 'transaction-prepare'
    EARLY_MISC = 'early_misc'
    PACKAGES = 'packages'
    MISC = 'misc'
    TRANSACTION_END = 'transaction-commit'
    CLOSEUP = 'closeup'
    CLEANUP = 'cleanup'
    PRE_TERMINATE = 'pre-terminate'
    TERMINATE = 'terminate'


class Priority:
    """Event priorities: lower runs earlier. Arithmetic (HIGH - 10) is allowed."""
    FIRST = 1000
    HIGH = 2000
    MEDIUM = 3000
    DEFAULT = 5000
    POST = 7000
    LOW = 9000
    LAST = 90000


class ExitCodes:
    SUCCESS = 0
    GENERAL_ERROR = 1
    INITIALIZATION_ERROR = 2
    # a run ended by a signal exits with 128 + the signal number: 130 for SIGINT (Ctrl-C),
    # 143 for SIGTERM, 129 for SIGHUP, 131 for SIGQUIT, 141 for SIGPIPE
    SIGNAL_BASE = 128


class BaseEnv:
    ERROR = 'BASE/error'
    ABORTED = 'BASE/aborted'
    EXCEPTION_INFO = 'BASE/exceptionInfo'
    # the name of the signal that ended the run (SIGINT, SIGTERM, ...), else None
    INTERRUPTED = 'BASE/interrupted'
    # the id of the stage where the run first failed, else None
    FAILED_STAGE = 'BASE/failedStage'
    EXIT_CODE = 'BASE/exitCode'
    LOG = 'BASE/log'
    PLUGIN_PATH = 'BASE/pluginPath'
    PLUGIN_GROUPS = 'BASE/pluginGroups'
    EXECUTION_DIRECTORY = 'BASE/executionDirectory'


class CoreEnv:
    CONFIG_FILE_NAME = 'CORE/configFileName'
    CONFIG_FILE_APPEND = 'CORE/configFileAppend'
    LOG_DIR = 'CORE/logDir'
    LOG_FILE_NAME = 'CORE/logFileName'
    LOG_FILE_PREFIX = 'CORE/logFileNamePrefix'
    LOG_FILTER_KEYS = 'CORE/logFilterKeys'
    LOG_FILTER = 'CORE/logFilter'
    MAIN_TRANSACTION = 'CORE/mainTransaction'
    FAIL_ON_PRIORITIZED_TRANSACTION = 'CORE/failOnPrioOverride'


class DialogEnv:
    DIALECT = 'DIALOG/dialect'
    AUTO_ACCEPT_DEFAULT = 'DIALOG/autoAcceptDefault'
    BOUNDARY = 'DIALOG/boundary'


QUESTION_PREFIX = 'QUESTION'

CONFIG_SECTIONS = ('environment:default', 'environment:init',
                   'environment:override', 'environment:enforce')
