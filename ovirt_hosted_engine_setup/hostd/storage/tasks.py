"""Asynchronous storage tasks (VDSM's Task.getStatus / Task.clear model).

TaskManager runs the tasks; Tasks serves the Task.* verbs (and
Host.getAllTasksStatuses) of the storage backend with it. Each task runs in a
worker thread. Its status is written to
<tasks_dir>/<taskID>.json at every change, so a finished result survives a
restart of the host agent; a task that was still running when the agent
stopped is reported after the restart as finished with a clean failure saying so.
"""
import json
import logging
import os
import threading
import uuid

from ...api.schema import error_code
from ..api_base import VdsmError, verb
from .fileutil import write_atomic

log = logging.getLogger(__name__)

GENERAL = error_code('general')


class TaskManager:
    def __init__(self, tasks_dir):
        self.tasks_dir = tasks_dir
        self._lock = threading.Lock()
        self._tasks = {}
        self._threads = {}
        os.makedirs(tasks_dir, exist_ok=True)

    def _save(self, status):
        write_atomic(os.path.join(self.tasks_dir, status['taskID'] + '.json'),
                     json.dumps(status).encode('utf-8'), mode=0o600)

    def recover(self):
        for name in sorted(os.listdir(self.tasks_dir)):
            if not name.endswith('.json'):
                continue
            path = os.path.join(self.tasks_dir, name)
            try:
                with open(path) as f:
                    status = json.load(f)
            except (OSError, ValueError):
                log.exception('unreadable task file %s, removed', path)
                os.unlink(path)
                continue
            if status.get('taskState') != 'finished':
                status.update(taskState='finished', taskResult='cleanFailure', code=GENERAL,
                              message='task %s (%s) was interrupted by a restart of the host '
                                      'agent: run it again' % (status['taskID'],
                                                               status.get('verb', '')))
                self._save(status)
            with self._lock:
                self._tasks[status['taskID']] = status

    def start(self, verb, fn, task_id=None):
        """Run fn() in a new task; return the task id. fn's return value is ignored."""
        task_id = task_id or str(uuid.uuid4())
        status = {'taskID': task_id, 'verb': verb, 'taskState': 'running', 'taskResult': '',
                  'code': 0, 'message': 'running'}
        with self._lock:
            if task_id in self._tasks:
                raise VdsmError('general', 'task %s already exists' % task_id)
            self._tasks[task_id] = status
            self._save(status)
        t = threading.Thread(target=self._run, args=(task_id, verb, fn),
                             name='task-%s' % task_id[:8], daemon=True)
        self._threads[task_id] = t
        t.start()
        return task_id

    def _run(self, task_id, verb, fn):
        try:
            fn()
        except VdsmError as e:
            log.warning('task %s (%s) failed: %s', task_id, verb, e)
            result = dict(taskResult='cleanFailure', code=e.code, message=e.message)
        except Exception as e:  # a task never kills the agent; the reason goes to the caller
            log.exception('task %s (%s) failed', task_id, verb)
            result = dict(taskResult='cleanFailure', code=GENERAL, message='%s: %s' % (verb, e))
        else:
            result = dict(taskResult='success', code=0, message='1 jobs completed successfully')
        with self._lock:
            status = self._tasks[task_id]
            status.update(result, taskState='finished')
            self._save(status)
            self._threads.pop(task_id, None)

    def _public(self, status):
        return {k: status[k] for k in ('taskID', 'taskState', 'taskResult', 'code', 'message')}

    def get_status(self, task_id):
        with self._lock:
            status = self._tasks.get(task_id)
            if status is None:
                raise VdsmError('UnknownTask', 'task %s is unknown (never started, or already '
                                'cleared)' % task_id)
            return self._public(status)

    def all_statuses(self):
        with self._lock:
            return {tid: self._public(s) for tid, s in self._tasks.items()}

    def clear(self, task_id):
        with self._lock:
            status = self._tasks.get(task_id)
            if status is None:
                raise VdsmError('UnknownTask', 'task %s is unknown (never started, or already '
                                'cleared)' % task_id)
            if status['taskState'] != 'finished':
                raise VdsmError('general', 'task %s is still %s: wait until it is finished before '
                                'clearing it' % (task_id, status['taskState']))
            del self._tasks[task_id]
            try:
                os.unlink(os.path.join(self.tasks_dir, task_id + '.json'))
            except FileNotFoundError:
                pass
        return True

    def running(self):
        with self._lock:
            return [tid for tid, s in self._tasks.items() if s['taskState'] != 'finished']

    def wait_all(self, timeout=None):
        for t in list(self._threads.values()):
            t.join(timeout)


class Tasks:
    """The storage backend's Task.* verbs and Host.getAllTasksStatuses."""

    def __init__(self, sc):
        self.sc = sc

    @verb('Task.getStatus')
    def getTaskStatus(self, taskID):
        return self.sc.tasks.get_status(taskID)

    @verb('Task.clear')
    def clearTask(self, taskID):
        return self.sc.tasks.clear(taskID)

    @verb('Host.getAllTasksStatuses')
    def getAllTasksStatuses(self):
        return self.sc.tasks.all_statuses()
