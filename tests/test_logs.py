"""Console logging of the dave tools: ours at INFO, other libraries' INFO chatter dropped."""
import subprocess
import sys

SCRIPT = """
import logging
from dave_core import logs
logs.configure()
logging.getLogger('onnxscript.rewriter').info('library chatter')
logging.getLogger('onnxscript.rewriter').warning('library warning')
logging.getLogger('dave_models.export').info('our progress')
logging.getLogger('__main__').info('tool run as a module')
"""


def test_project_info_is_shown_and_library_info_is_not():
    # A fresh interpreter: basicConfig only acts on an unconfigured root logger.
    result = subprocess.run([sys.executable, '-c', SCRIPT], capture_output=True, text=True, timeout=60, check=True)
    assert 'our progress' in result.stderr
    assert 'tool run as a module' in result.stderr
    assert 'library warning' in result.stderr
    assert 'library chatter' not in result.stderr
