"""report.html in a real browser (Debian's chromium, headless, through Selenium):
the table sorts, every image loads, no console errors; `make test-browser`
installs what it needs and runs this."""
import json
import shutil

import pytest
from conftest import make_mvtec

pytestmark = pytest.mark.browser


@pytest.fixture(scope='module')
def report(tmp_path_factory):
    from anomaly_plugin.apis.survey import run_survey
    tmp = tmp_path_factory.mktemp('survey')
    data = make_mvtec(tmp / 'cat', size=32, n_train=8, n_good=2, n_bad=2)
    run_survey(str(data), methods=['conv_ae', 'ssim_ae'], work_dir=str(tmp / 'w'),
               cfg_options=['train_cfg.max_epochs=1', 'train_cfg.min_iters=0', 'img_size=32'],
               verbose=False)
    return tmp / 'w' / 'report.html'


@pytest.fixture(scope='module')
def browser():
    webdriver = pytest.importorskip('selenium.webdriver')
    chromium = shutil.which('chromium')
    driver_path = shutil.which('chromedriver')
    if not (chromium and driver_path):
        pytest.fail('chromium and chromium-driver are needed: make test-browser installs them')
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in ('--headless=new', '--no-sandbox', '--disable-gpu', '--window-size=1400,1200'):
        opts.add_argument(arg)
    opts.set_capability('goog:loggingPrefs', {'browser': 'ALL'})
    from selenium.webdriver.chrome.service import Service
    driver = webdriver.Chrome(service=Service(driver_path), options=opts)
    yield driver
    driver.quit()


def test_report_sorts_loads_every_image_and_logs_no_error(report, browser):
    from selenium.webdriver.common.by import By
    browser.get(report.as_uri())
    images = browser.find_elements(By.TAG_NAME, 'img')
    assert len(images) >= 8
    broken = [i.get_attribute('src') for i in images
              if not browser.execute_script('return arguments[0].complete && '
                                            'arguments[0].naturalWidth > 0', i)]
    assert not broken
    table = browser.find_element(By.ID, 'survey')
    headers = table.find_elements(By.TAG_NAME, 'th')
    names = [h.text for h in headers]
    col = names.index('pixel/AUROC')

    def column():
        return [float(r.find_elements(By.TAG_NAME, 'td')[col].text)
                for r in table.find_elements(By.CSS_SELECTOR, 'tbody tr')]

    headers[col].click()
    assert column() == sorted(column())
    headers[col].click()
    assert column() == sorted(column(), reverse=True)
    method = names.index('method')
    headers[method].click()
    got = [r.find_elements(By.TAG_NAME, 'td')[method].text
           for r in table.find_elements(By.CSS_SELECTOR, 'tbody tr')]
    assert got == sorted(got)
    errors = [e for e in browser.get_log('browser') if e['level'] == 'SEVERE']
    assert not errors, json.dumps(errors)[:1000]
